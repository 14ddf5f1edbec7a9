"""pods URLs outside any team (webhooks, public links)."""

from django.urls import path

from pods.connect import views as connect

# The proxy itself (/proxy/<pod>-<port>/ and <pod>-<port>.<PROXY_DOMAIN>) is served before
# Django, by pods.connect.asgi.ProxyRouter; this is the console half of its sign-in.
urlpatterns: list = [
    path("proxy-auth/<str:target>/", connect.proxy_auth, name="proxy_auth"),
]
