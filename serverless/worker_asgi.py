"""The worker gateway's ASGI application (serverless.gateway), served by daphne on the Unix
socket worker pods get: `daphne -u $DATA_DIR/run/worker-gateway/gateway.sock
serverless.worker_asgi:application` (scripts/run.sh starts it next to the console)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_asgi_app = get_asgi_application()

from daphne.http_protocol import WebRequest  # noqa: E402

from serverless import services  # noqa: E402
from serverless.asgi import MAX_BODY, ServerlessRouter, in_thread  # noqa: E402
from serverless.gateway import WorkerGateway  # noqa: E402
from serverless.models import Worker  # noqa: E402
from serverless.protocol import worker_secret  # noqa: E402


def authenticate(*, endpoint_id: str, worker_id: str, authorization: str) -> Worker | None:
    secret = worker_secret({"authorization": authorization})
    return services.authenticate_worker(endpoint_id=endpoint_id, worker_id=worker_id, secret=secret)


def bounded_chunk(request: WebRequest, data: bytes) -> None:
    """Twisted receives a whole body (to a temporary file past 100 KB) before daphne hands the
    request over, so a pod could fill the host's disk: in this process a body is cut off at
    MAX_BODY (more than any worker route accepts), answered 413 and the connection closed."""
    received = getattr(request, "_gateway_received", 0) + len(data)
    request._gateway_received = received
    if received <= MAX_BODY:
        request.content.write(data)
    elif received - len(data) <= MAX_BODY:  # the first chunk past the bound
        request.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        request.channel.transport.loseConnection()


WebRequest.handleContentChunk = bounded_chunk

# The held worker long-polls as in console.asgi, and Django for the short worker routes; no pod
# proxy and no websockets. The gateway authenticates callers it does not know yet itself, in
# the same database threads.
application = WorkerGateway(ServerlessRouter(django_asgi_app), in_thread(authenticate))
