"""Serverless pages: endpoints (list, create, edit, delete), an endpoint's health, workers
and recent jobs, the request tester, and one job's status and output."""

from __future__ import annotations

import json

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from serverless import services
from serverless.forms import EndpointForm, TestJobForm
from serverless.models import Endpoint, Job
from teams.access import team_view

RECENT_JOBS = 20
PREVIEW_CHARS = 200


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


@team_view("use")
def endpoint_list(request):
    S = Job.Status
    endpoints = (
        Endpoint.objects.for_team(request.team)
        .select_related("template")
        .annotate(
            in_queue=Count("jobs", filter=Q(jobs__status=S.IN_QUEUE)),
            in_progress=Count("jobs", filter=Q(jobs__status=S.IN_PROGRESS)),
        )
    )
    return _render(request, "serverless/endpoint_list.html", {"endpoints": endpoints})


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


def _detail_context(request, endpoint: Endpoint, form: TestJobForm) -> dict:
    jobs = list(endpoint.jobs.select_related("worker").order_by("-created_at", "-id")[:RECENT_JOBS])
    for job in jobs:
        job.input_preview = preview(job.input)
        job.output_preview = "" if job.output is None else preview(job.output)
    return {
        "endpoint": endpoint,
        "health": services.endpoint_health(endpoint),
        "workers": endpoint.workers.exclude(state="stopped"),
        "jobs": jobs,
        "form": form,
        "gpu_names": endpoint.gpu_type_ids,
    }


@team_view("use")
def endpoint_detail(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    context = _detail_context(request, endpoint, TestJobForm())
    return _render(request, "serverless/endpoint_detail.html", context)


@require_POST
@team_view("deploy")
def endpoint_test_job(request, endpoint_id: str):
    """The request tester: send a job with this input, then watch it on the job's page."""
    endpoint = _endpoint(request, endpoint_id)
    form = TestJobForm(request.POST)
    if not form.is_valid():
        context = _detail_context(request, endpoint, form)
        return _render(request, "serverless/endpoint_detail.html", context, status=400)
    payload = {"input": form.cleaned_data["input"]}
    job = services.submit_job(actor=request.user, endpoint=endpoint, payload=payload)
    messages.success(request, f"Job {job.public_id} queued.")
    return redirect("endpoint_job", request.team.slug, endpoint.public_id, job.public_id)


@team_view("use")
def endpoint_job(request, endpoint_id: str, job_id: str):
    endpoint = _endpoint(request, endpoint_id)
    job = endpoint.jobs.select_related("worker").filter(public_id=job_id).first()
    if job is None:
        raise Http404("No such job (results are kept 30 minutes after the job ends).")
    context = {
        "endpoint": endpoint,
        "job": job,
        "input_text": json.dumps(job.input, indent=2, ensure_ascii=False),
        "output_text": "" if job.output is None else json.dumps(job.output, indent=2),
    }
    return _render(request, "serverless/job_detail.html", context)
