"""The job API under /v2/<endpoint_id>/, as the runpod SDK and RunPod's docs call it:
run, runsync, status, stream, cancel, retry, purge-queue, health. API keys authenticate it
(Bearer, raw or ?api_key=) and act with their creator's role; outsiders get 404.

/runsync is held until the job finishes, so it is served at the ASGI level (serverless.asgi)
without a thread per held request; the view here serves it under WSGI with a short hold."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import APIException, NotFound, ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from api.access import api_membership, request_api_key
from console import safejson
from serverless import services
from serverless.models import Endpoint, Job
from teams.audit import current_api_key

MB = 1024 * 1024
# RunPod's limits: 10 MB for /run, 20 MB for /runsync.
INPUT_LIMIT = {"run": 10 * MB, "runsync": 20 * MB}


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class JobRefused(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


def too_large_message(limit: int) -> str:
    return f"The request body is larger than this route's limit of {limit // MB} MB."


def read_json(request: HttpRequest, limit: int):
    """The JSON body, read without trusting Content-Length; 413 past `limit` bytes."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(too_large_message(limit))
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(too_large_message(limit))
    try:
        return safejson.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ParseError("The body is not valid JSON.") from None


def job_route(method: str) -> Callable:
    """A DRF view for one method that names the request's API key in its audit events."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: Request, *args, **kwargs) -> Response:
            token = current_api_key.set(None)
            try:
                return view(request, *args, **kwargs)
            finally:
                current_api_key.reset(token)

        return api_view([method])(wrapper)

    return decorator


def _endpoint(request: Request, endpoint_id: str, capability: str) -> Endpoint:
    membership = api_membership(request, capability)
    key = request_api_key(request)
    current_api_key.set(key.public_id if key else None)
    if "\x00" in endpoint_id:
        raise NotFound("No such endpoint.")
    endpoint = services.only_row(
        Endpoint.objects.filter(team=membership.team, public_id=endpoint_id)
    )
    if endpoint is None:
        raise NotFound("No such endpoint.")
    endpoint.team = membership.team  # funds checks and audit events read it: no join needed
    return endpoint


def _job(endpoint: Endpoint, job_id: str) -> Job:
    if "\x00" in job_id:
        raise NotFound("No such job.")
    # Without its input (up to 20 MB): no answer shows it, and services that change a job
    # lock and read it again.
    jobs = Job.objects.select_related("worker").defer("input")
    job = services.only_row(jobs.filter(endpoint=endpoint, public_id=job_id))
    if job is None:
        raise NotFound("No such job.")
    job.endpoint = endpoint
    return job


def refused(error: services.JobError) -> JobRefused:
    exception = JobRefused(str(error))
    exception.status_code = error.status  # 402 when the team's funds ran low
    return exception


def submit(request: Request, endpoint: Endpoint, *, sync: bool) -> Job:
    payload = read_json(request._request, INPUT_LIMIT["runsync" if sync else "run"])
    try:
        return services.submit_job(
            actor=request.user, endpoint=endpoint, payload=payload, sync=sync
        )
    except services.JobError as error:
        raise refused(error) from None


@job_route("POST")
def run(request: Request, endpoint_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id, "deploy")
    job = submit(request, endpoint, sync=False)
    return Response({"id": job.public_id, "status": job.status})


@job_route("POST")
def runsync(request: Request, endpoint_id: str) -> Response:
    """Under WSGI: queue and answer the current status at once (the SDK then polls /status);
    the ASGI router in front of Django holds /runsync instead."""
    endpoint = _endpoint(request, endpoint_id, "deploy")
    job = submit(request, endpoint, sync=True)
    return Response(services.job_status(job))


@job_route("GET")
def job_status(request: Request, endpoint_id: str, job_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id, "use")
    return Response(services.job_status(_job(endpoint, job_id)))


@job_route("GET")
def stream(request: Request, endpoint_id: str, job_id: str) -> Response:
    """The chunks streamed since the last call (each once), and the job's status: the SDK
    stops when the status is final and `stream` is empty."""
    endpoint = _endpoint(request, endpoint_id, "use")
    job = _job(endpoint, job_id)
    chunks = services.drain_stream(job)
    job.refresh_from_db(fields=["status"])
    outputs = [{"output": chunk} for chunk in chunks]
    return Response({"id": job.public_id, "status": job.status, "stream": outputs})


@job_route("POST")
def cancel(request: Request, endpoint_id: str, job_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id, "deploy")
    job = services.cancel_job(actor=request.user, job=_job(endpoint, job_id))
    return Response({"id": job.public_id, "status": job.status})


@job_route("POST")
def retry(request: Request, endpoint_id: str, job_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id, "deploy")
    try:
        job = services.retry_job(actor=request.user, job=_job(endpoint, job_id))
    except services.JobError as error:
        raise refused(error) from None
    return Response({"id": job.public_id, "status": job.status})


@job_route("POST")
def purge_queue(request: Request, endpoint_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id, "deploy")
    removed = services.purge_queue(actor=request.user, endpoint=endpoint)
    return Response({"removed": removed, "status": "completed"})


@job_route("GET")
def health(request: Request, endpoint_id: str) -> Response:
    endpoint = _endpoint(request, endpoint_id, "use")
    return Response(services.endpoint_health(endpoint))


def runsync_hold_seconds(request_wait_ms: str | None) -> float:
    """RunPod's ?wait=<ms> (1000 to 300000), else SERVERLESS_RUNSYNC_WAIT seconds."""
    default = settings.SERVERLESS_RUNSYNC_WAIT
    try:
        wait = int(request_wait_ms) / 1000 if request_wait_ms else default
    except ValueError:
        wait = default
    return min(max(wait, 1.0), 300.0)
