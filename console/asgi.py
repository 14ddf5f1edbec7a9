"""HTTP through Django, websockets through Channels (apps list their routes in routing.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from console.routing import websocket_urlpatterns  # noqa: E402
from pods.connect.asgi import ProxyRouter  # noqa: E402
from serverless.asgi import ServerlessRouter  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
# Serverless long-polls (job-take, job-stop, a held /runsync) wait as coroutines, not threads.
application = ServerlessRouter(application)
# Pods' HTTP ports (/proxy/<pod>-<port>/ and <pod>-<port>.PROXY_DOMAIN) bypass Django: streamed.
# Outermost, so a pod's own /v2/... paths on its origin reach the pod, not the console.
application = ProxyRouter(application)
