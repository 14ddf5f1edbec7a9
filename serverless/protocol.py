"""The worker protocol's short requests: job-done, job-stream and ping. (The held ones,
job-take and job-stop, are served at the ASGI level by serverless.asgi.)

Workers send their own secret raw in `Authorization` and post JSON labelled
`application/x-www-form-urlencoded`, so bodies are parsed from request.body as JSON, never
from request.POST. Everything a worker sends is attacker input: it can only touch jobs
handed to that worker, and a wrong secret is a 401 that says nothing more."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from console import safejson
from serverless import services
from serverless.models import Worker

MAX_RESULT_BYTES = 20 * 1024 * 1024


def worker_secret(headers) -> str:
    """The raw secret (what the SDK sends) or a Bearer one."""
    value = (headers.get("authorization") or "").strip()
    scheme, _, rest = value.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value


def _worker(request: HttpRequest, endpoint_id: str, worker_id: str) -> Worker | None:
    return services.authenticate_worker(
        endpoint_id=endpoint_id, worker_id=worker_id, secret=worker_secret(request.headers)
    )


def _refused() -> JsonResponse:
    return JsonResponse({"error": "Unknown worker or wrong secret."}, status=401)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _body(request: HttpRequest):
    """The JSON body, or a JsonResponse refusing it."""
    if _declared_length(request) > MAX_RESULT_BYTES:
        return JsonResponse({"error": "The result is larger than 20 MB."}, status=413)
    raw = request.read(MAX_RESULT_BYTES + 1)
    if len(raw) > MAX_RESULT_BYTES:
        return JsonResponse({"error": "The result is larger than 20 MB."}, status=413)
    try:
        return safejson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": "The body is not JSON."}, status=400)


@csrf_exempt
@require_POST
def job_done(request: HttpRequest, endpoint_id: str, worker_id: str, job_id: str):
    worker = _worker(request, endpoint_id, worker_id)
    if worker is None:
        return _refused()
    body = _body(request)
    if isinstance(body, JsonResponse):
        return body
    # Unknown, foreign or finished jobs are acknowledged and ignored: the SDK retries
    # non-2xx answers, and a repeat of a result already recorded is normal.
    job = services.record_result(worker=worker, job_id=job_id, body=body)
    return JsonResponse({"accepted": job is not None})


@csrf_exempt
@require_POST
def job_stream(request: HttpRequest, endpoint_id: str, worker_id: str, job_id: str):
    worker = _worker(request, endpoint_id, worker_id)
    if worker is None:
        return _refused()
    body = _body(request)
    if isinstance(body, JsonResponse):
        return body
    accepted = services.add_stream_chunk(worker=worker, job_id=job_id, body=body)
    return JsonResponse({"accepted": accepted})


@csrf_exempt
@require_GET
def ping(request: HttpRequest, endpoint_id: str, worker_id: str):
    worker = _worker(request, endpoint_id, worker_id)
    if worker is None:
        return _refused()
    job_ids = [j for j in request.GET.get("job_id", "").split(",") if j][:100]
    unhealthy = ""
    if request.GET.get("status") == "unhealthy":
        unhealthy = f"{request.GET.get('check', '')}: {request.GET.get('reason', '')}"
    services.heartbeat(
        worker=worker,
        job_ids=job_ids,
        version=request.GET.get("runpod_version", ""),
        unhealthy=unhealthy,
    )
    return JsonResponse({"ok": True})
