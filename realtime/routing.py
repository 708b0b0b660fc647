"""WebSocket routes. Any id is routed to the consumer so a malformed one gets a clear 4404 close
instead of a routing error."""

from django.urls import re_path

from .consumers import VideoJobConsumer

websocket_urlpatterns = [
    re_path(r"^ws/video-jobs/(?P<job_id>[^/]+)/$", VideoJobConsumer.as_asgi()),
]
