"""The worker gateway's ASGI application (serverless.gateway), served by daphne on the Unix
socket worker pods get: `daphne -u $DATA_DIR/run/worker-gateway/gateway.sock
serverless.worker_asgi:application` (scripts/run.sh starts it next to the console)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_asgi_app = get_asgi_application()

from serverless.asgi import ServerlessRouter  # noqa: E402
from serverless.gateway import WorkerGateway  # noqa: E402

# The held worker long-polls as in console.asgi, and Django for the short worker routes; no pod
# proxy and no websockets.
application = WorkerGateway(ServerlessRouter(django_asgi_app))
