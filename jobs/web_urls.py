"""The web workspace's pages (namespace "workspace"), mounted at the site root."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import URLPattern, URLResolver, path

from . import web_views

app_name = "workspace"

urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", web_views.WorkspaceLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),  # POST only (Django 5)
    path("", web_views.job_list, name="job-list"),
    path("jobs/new/", web_views.job_new, name="job-new"),
    path("jobs/<uuid:job_id>/", web_views.job_detail, name="job-detail"),
]

# daphne serves no static files itself; with DEBUG on (`make serve`) Django serves them from the app
# directories. (Empty when DEBUG is off: production collects them and serves them in front of daphne.)
urlpatterns += staticfiles_urlpatterns()
