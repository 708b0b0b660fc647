"""Routes under /api/ for outgoing webhooks (included after jobs.api.urls, namespace "callbacks")."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path
from django.views.decorators.csrf import csrf_exempt

from jobs.api.exceptions import api_not_found

from . import views

app_name = "callbacks"

urlpatterns: list[URLPattern | URLResolver] = [
    path("webhook-endpoints/", views.EndpointListCreateView.as_view(), name="endpoint-list"),
    path("webhook-endpoints/<uuid:endpoint_id>/", views.EndpointDetailView.as_view(), name="endpoint-detail"),
    path("webhook-deliveries/", views.DeliveryListView.as_view(), name="delivery-list"),
    path("webhook-deliveries/<int:delivery_id>/", views.DeliveryDetailView.as_view(), name="delivery-detail"),
    path(
        "webhook-deliveries/<int:delivery_id>/redeliver/",
        views.DeliveryRedeliverView.as_view(),
        name="delivery-redeliver",
    ),
    # Anything else under these prefixes: the API's JSON 404, not Django's HTML page.
    re_path(
        r"^(?:webhook-endpoints|webhook-deliveries)(?:/(?s:.*))?$",
        csrf_exempt(api_not_found),
        name="not-found",
    ),
]
