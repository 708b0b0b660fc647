"""WebSocket routes. Any id is routed to the consumer so a malformed one gets a clear 4404 close
instead of a routing error."""

from django.urls import re_path

from .consumers import NoSuchSocketConsumer, VideoJobConsumer

websocket_urlpatterns = [
    re_path(r"^ws/video-jobs/(?P<job_id>[^/]+)/$", VideoJobConsumer.as_asgi()),
    # Anything else: closed with 4404 instead of a routing error (a 500 in the server's log).
    re_path(r"", NoSuchSocketConsumer.as_asgi()),
]
