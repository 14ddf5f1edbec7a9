"""Serverless pages: endpoints (list, create, edit, delete); an endpoint's live health, workers,
percentiles, requests per minute and recent jobs; the request tester; one job's status and
output; a worker's log. Live parts are partials (`?partial=...`) that htmx polls."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.money import to_money
from console import safejson
from pods.lifecycle import backend_for
from pods.models import GpuType
from pods.runtime import RuntimeFailure
from serverless import services, stats
from serverless.forms import EndpointForm, TestJobForm
from serverless.models import Endpoint, Job, Worker
from teams.access import team_view

RECENT_JOBS = 20
PREVIEW_CHARS = 200
STOPPED_SHOWN = timedelta(minutes=10)  # stopped workers stay listed this long (their logs)
LOG_TAIL_BYTES = 16384
# The job API routes shown on the endpoint page: (label, URL name, takes a job id).
API_ROUTES = [
    ("Run (async)", "v2-run", False),
    ("Run (sync)", "v2-runsync", False),
    ("Status", "v2-status", True),
    ("Stream", "v2-stream", True),
    ("Cancel", "v2-cancel", True),
    ("Health", "v2-health", False),
    ("Purge queue", "v2-purge-queue", False),
]


CLASS_REPR = re.compile(r"^<class '([\w.]+)'>$")  # str(type(error)), as the SDK sends it


def _render(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    context["can_deploy"] = request.membership.can("deploy")
    return render(request, template, context, status=status)


def _endpoint(request, endpoint_id: str) -> Endpoint:
    endpoint = (
        Endpoint.objects.for_team(request.team)
        .select_related("team", "template", "cpu_instance", "network_volume")
        .filter(public_id=endpoint_id)
        .first()
    )
    if endpoint is None:
        raise Http404("No such endpoint.")
    return endpoint


def preview(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def _gpu_names(endpoints: list[Endpoint]) -> None:
    """endpoint.gpu_names: display names in priority order, and endpoint.worker_prices: what
    one worker costs on each choice, (name, $/h, $/s) (one query for all endpoints)."""
    ids = {gpu_id for endpoint in endpoints for gpu_id in endpoint.gpu_type_ids}
    gpus = GpuType.objects.filter(pk__in=ids).only("display_name", "serverless_price")
    found = {gpu.pk: gpu for gpu in gpus}
    for endpoint in endpoints:
        endpoint.gpu_names = [
            found[gpu_id].display_name if gpu_id in found else gpu_id
            for gpu_id in endpoint.gpu_type_ids
        ]
        endpoint.worker_prices = _worker_prices(endpoint, found)


def _worker_prices(endpoint: Endpoint, gpus: dict[str, GpuType]) -> list[tuple]:
    if not endpoint.is_gpu:
        cpu = endpoint.cpu_instance
        hourly = [] if cpu is None else [(cpu.name, cpu.serverless_price)]
    else:
        priced = [gpus[gpu_id] for gpu_id in endpoint.gpu_type_ids if gpu_id in gpus]
        hourly = [(gpu.display_name, gpu.serverless_price * endpoint.gpu_count) for gpu in priced]
    return [(name, price, per_second(price)) for name, price in hourly]


def per_second(hourly: Decimal) -> Decimal:
    """A serverless worker's $/h as the $/s it is billed by (per second of ready time)."""
    return to_money(hourly / 3600)


def error_parts(error: str) -> tuple[str, str]:
    """A failed job's error as (summary, details). The runpod SDK reports a handler's
    exception as JSON {"error_type": "<class 'ValueError'>", "error_message", "error_traceback"}:
    the summary is "ValueError: message" and the details the traceback; any other error is its
    own summary."""
    try:
        parsed = safejson.loads(error)
    except ValueError:
        return error, ""
    if not isinstance(parsed, dict) or "error_message" not in parsed:
        return error, ""
    kind, message = str(parsed.get("error_type") or ""), str(parsed["error_message"])
    kind = CLASS_REPR.sub(r"\1", kind)
    summary = f"{kind}: {message}" if kind else message
    return summary, str(parsed.get("error_traceback") or "")


@team_view("use")
def endpoint_list(request):
    endpoints = list(
        stats.with_counts(
            Endpoint.objects.for_team(request.team).select_related("template", "cpu_instance")
        )
    )
    _gpu_names(endpoints)
    for endpoint in endpoints:
        endpoint.worker_counts = [
            (state, getattr(endpoint, f"workers_{state}")) for state in stats.LIVE_WORKER_STATES
        ]
        endpoint.worker_total = sum(count for _, count in endpoint.worker_counts)
    context = {"endpoints": endpoints}
    if request.GET.get("partial") == "table":
        return _render(request, "serverless/partials/endpoint_table.html", context)
    return _render(request, "serverless/endpoint_list.html", context)


@team_view("deploy")
def endpoint_create(request):
    form = EndpointForm(request.POST or None, team=request.team)
    if request.method == "POST" and form.is_valid():
        endpoint = services.create_endpoint(actor=request.user, team=request.team, **form.values())
        messages.success(request, f"Endpoint {endpoint.name} created.")
        return redirect("endpoint_detail", request.team.slug, endpoint.public_id)
    return _render(request, "serverless/endpoint_form.html", {"form": form, "endpoint": None})


@team_view("deploy")
def endpoint_edit(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    form = EndpointForm(request.POST or None, instance=endpoint, team=request.team)
    if request.method == "POST" and form.is_valid():
        services.update_endpoint(actor=request.user, endpoint=endpoint, **form.values())
        messages.success(request, f"Endpoint {endpoint.name} saved; running workers are stale.")
        return redirect("endpoint_detail", request.team.slug, endpoint.public_id)
    context = {"form": form, "endpoint": endpoint}
    return _render(request, "serverless/endpoint_form.html", context)


@require_POST
@team_view("deploy")
def endpoint_delete(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    services.delete_endpoint(actor=request.user, endpoint=endpoint)
    messages.success(request, f"Endpoint {endpoint.name} deleted with its jobs.")
    return redirect("endpoint_list", request.team.slug)


def _recent_jobs(endpoint: Endpoint) -> list[Job]:
    jobs = list(endpoint.jobs.select_related("worker").order_by("-created_at", "-id")[:RECENT_JOBS])
    for job in jobs:
        job.input_preview = preview(job.input)
        job.output_preview = "" if job.output is None else preview(job.output)
        job.error_summary = error_parts(job.error)[0] if job.error else ""
    return jobs


def _workers(endpoint: Endpoint, now) -> list[Worker]:
    """Live workers, then the ones stopped in the last minutes (why, and their logs)."""
    recent = Q(stopped_at__gte=now - STOPPED_SHOWN)
    return list(
        endpoint.workers.filter(~Q(state=Worker.State.STOPPED) | recent)
        .select_related("gpu_type", "pod")
        .order_by("stopped_at", "created_at", "id")
    )


def _live_context(endpoint: Endpoint) -> dict:
    now = timezone.now()
    return {
        "endpoint": endpoint,
        "health": services.endpoint_health(endpoint),
        "workers": _workers(endpoint, now),
        "jobs": _recent_jobs(endpoint),
        "percentiles": stats.percentiles(endpoint),
        "rpm": stats.requests_per_minute(endpoint, now),
    }


def _api_urls(request, endpoint: Endpoint) -> list[tuple[str, str]]:
    urls = []
    for label, name, takes_job in API_ROUTES:
        args = [endpoint.public_id, "JOB_ID"] if takes_job else [endpoint.public_id]
        urls.append((label, request.build_absolute_uri(reverse(name, args=args))))
    return urls


def _detail_context(request, endpoint: Endpoint, form: TestJobForm) -> dict:
    _gpu_names([endpoint])
    live = _live_context(endpoint)
    runsync = request.build_absolute_uri(reverse("v2-runsync", args=[endpoint.public_id]))
    return {
        **live,
        "rpm_total": sum(live["rpm"]["values"]),
        "form": form,
        "api_urls": _api_urls(request, endpoint),
        "runsync_url": runsync,
        "sdk_base_url": runsync.rsplit("/", 2)[0],  # runpod.endpoint_url_base: ".../v2"
    }


@team_view("use")
def endpoint_detail(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    if request.GET.get("partial") == "live":
        return _render(request, "serverless/partials/endpoint_live.html", _live_context(endpoint))
    context = _detail_context(request, endpoint, TestJobForm())
    return _render(request, "serverless/endpoint_detail.html", context)


def _tester_refused(request, endpoint: Endpoint, form: TestJobForm, status: int) -> HttpResponse:
    """The tester's errors. To htmx a 200 with the error in place (a 4xx would be an XHR
    failure in the browser's console, and htmx does not swap it); to a plain form, `status`."""
    if request.headers.get("HX-Request") == "true":
        return _render(request, "serverless/partials/tester_errors.html", {"form": form})
    context = _detail_context(request, endpoint, form)
    return _render(request, "serverless/endpoint_detail.html", context, status=status)


@require_POST
@team_view("deploy")
def endpoint_test_job(request, endpoint_id: str):
    """The request tester: send a job with this input. From the page's script (htmx) the answer
    is the job's live status; without it, a redirect to the job's page."""
    endpoint = _endpoint(request, endpoint_id)
    form = TestJobForm(request.POST)
    if not form.is_valid():
        return _tester_refused(request, endpoint, form, 400)
    try:
        payload = {"input": form.cleaned_data["input"]}
        job = services.submit_job(actor=request.user, endpoint=endpoint, payload=payload)
    except services.JobError as error:  # e.g. low funds (402), as the job API answers
        form.add_error("input", str(error))
        return _tester_refused(request, endpoint, form, error.status)
    if request.headers.get("HX-Request") == "true":
        return _render(request, "serverless/partials/job_status.html", _job_context(endpoint, job))
    messages.success(request, f"Job {job.public_id} queued.")
    return redirect("endpoint_job", request.team.slug, endpoint.public_id, job.public_id)


def _job_context(endpoint: Endpoint, job: Job) -> dict:
    job.error_summary, job.error_details = error_parts(job.error) if job.error else ("", "")
    return {
        "endpoint": endpoint,
        "job": job,
        "input_text": json.dumps(job.input, indent=2, ensure_ascii=False),
        "output_text": (
            "" if job.output is None else json.dumps(job.output, indent=2, ensure_ascii=False)
        ),
    }


@team_view("use")
def endpoint_job(request, endpoint_id: str, job_id: str):
    endpoint = _endpoint(request, endpoint_id)
    job = endpoint.jobs.select_related("worker").filter(public_id=job_id).first()
    if job is None:
        raise Http404("No such job (results are kept 30 minutes after the job ends).")
    context = _job_context(endpoint, job)
    if request.GET.get("partial") == "status":
        return _render(request, "serverless/partials/job_status.html", context)
    return _render(request, "serverless/job_detail.html", context)


def _log_tail(worker: Worker) -> str | None:
    """The end of the worker's pod log; None when it has no pod or the log cannot be read."""
    if worker.pod is None:
        return None
    try:
        backend = backend_for(worker.pod)
        return backend.read_logs({"pod_id": worker.pod.public_id}, limit=LOG_TAIL_BYTES).text
    except (RuntimeFailure, OSError):
        return None


@team_view("use")
def endpoint_worker_logs(request, endpoint_id: str, worker_id: str):
    """The worker's pod log tail (what its handler printed), escaped by the template."""
    endpoint = _endpoint(request, endpoint_id)
    worker = endpoint.workers.select_related("pod__machine").filter(public_id=worker_id).first()
    if worker is None:
        raise Http404("No such worker.")
    context = {"endpoint": endpoint, "worker": worker, "log_text": _log_tail(worker)}
    return _render(request, "serverless/partials/worker_log.html", context)
