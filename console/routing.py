"""Every websocket route of every app, gathered in one list."""

from pods.routing import websocket_urlpatterns as pods_websockets

websocket_urlpatterns: list = [
    *pods_websockets,
]
