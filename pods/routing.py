from django.urls import path

from pods import consumers
from pods.connect.terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/t/<slug:team>/pods/", consumers.PodListConsumer.as_asgi()),
    path("ws/t/<slug:team>/pods/<slug:pod_id>/", consumers.PodConsumer.as_asgi()),
    path("ws/t/<slug:team>/pods/<slug:pod_id>/terminal/", TerminalConsumer.as_asgi()),
]
