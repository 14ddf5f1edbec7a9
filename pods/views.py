"""Pods, templates and storage pages. Views check access (team_view), run a form or a service,
and redirect or render; the work is in pods.services."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing.burn import burn_rate
from billing.services import get_account
from pods import services
from pods.availability import NO_MACHINES, Where, gpu_offers
from pods.forms import (
    MAX_GPUS,
    DeployForm,
    GrowVolumeForm,
    NetworkVolumeForm,
    RenameForm,
    TemplateForm,
    TimerForm,
    apply_template,
    bounded_int,
    lookup_text,
    template_preset,
    with_env_row_added,
    with_env_row_removed,
)
from pods.lifecycle import backend_for
from pods.models import CloudType, CpuInstanceType, GpuType, NetworkVolume, Pod, PodTemplate
from pods.pricing import network_volume_per_hour, spent
from pods.runtime import RuntimeFailure
from teams.access import team_view

WIZARD_DEFAULTS = {
    "compute": "gpu",
    "cloud_type": "SECURE",
    "gpu_count": "1",
    "container_disk_gb": "10",
    "volume_gb": "20",
    "volume_mount_path": "/workspace",
    "pricing": "on_demand",
    "env_rows": "1",
}


def _render(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    context["can_deploy"] = request.membership.can("deploy")
    return render(request, template, context, status=status)


def _pod(request, pod_id: str) -> Pod:
    queryset = Pod.objects.for_team(request.team).select_related(
        "team", "machine", "gpu_type", "cpu_instance", "network_volume", "template"
    )
    return get_object_or_404(queryset, public_id=pod_id)


# Pods list and detail ---------------------------------------------------------------------


@team_view("use")
def pod_list(request):
    pods = (
        Pod.objects.for_team(request.team)
        .user_pods()
        .live()
        .select_related("gpu_type", "cpu_instance", "machine", "template")
        .order_by("-created_at")
    )
    context = {"pods": pods, "burn_rate": burn_rate(request.team)}
    if request.GET.get("partial") == "table":
        return _render(request, "pods/partials/pod_table.html", context)
    return _render(request, "pods/pod_list.html", context)


def _usage(pod: Pod):
    if pod.status != Pod.Status.RUNNING or not pod.runtime_handle:
        return None
    try:
        return backend_for(pod).usage(pod.runtime_handle)
    except (RuntimeFailure, OSError):
        return None


def _log_tail(pod: Pod) -> tuple[str, str]:
    try:
        chunk = backend_for(pod).read_logs({"pod_id": pod.public_id}, limit=16384)
    except (RuntimeFailure, OSError):
        return "", ""
    return chunk.text, chunk.cursor


@team_view("use")
def pod_detail(request, pod_id: str):
    pod = _pod(request, pod_id)
    log_text, log_cursor = _log_tail(pod)
    context = {
        "pod": pod,
        "price": pod.price(),
        "spent": spent(pod),
        "events": pod.events.select_related("actor")[:50],
        "usage": _usage(pod),
        "log_text": log_text,
        "log_cursor": log_cursor,
        "rename_form": RenameForm(initial={"name": pod.name}),
        "timer_form": TimerForm(),
        "offer_zero_gpus": request.GET.get("zero_gpus") == "offer" and pod.can_start(),
    }
    if request.GET.get("partial") == "status":
        return _render(request, "pods/partials/pod_status.html", context)
    return _render(request, "pods/pod_detail.html", context)


@team_view("use")
def pod_logs(request, pod_id: str):
    pod = _pod(request, pod_id)
    try:
        text = backend_for(pod).read_logs({"pod_id": pod.public_id}, limit=1024 * 1024).text
    except (RuntimeFailure, OSError) as error:
        raise Http404(str(error)) from error
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{pod.public_id}.log"'
    return response


def _run(request, pod: Pod, verb, success: str, **kwargs):
    try:
        verb(actor=request.user, pod=pod, **kwargs)
    except services.PodError as error:
        if error.code == "gpus_taken":
            messages.warning(request, str(error))
            return redirect(
                reverse("pod_detail", args=[pod.team.slug, pod.public_id]) + "?zero_gpus=offer"
            )
        messages.error(request, str(error))
    else:
        messages.success(request, success)
    return redirect("pod_detail", pod.team.slug, pod.public_id)


@require_POST
@team_view("deploy")
def pod_stop(request, pod_id: str):
    pod = _pod(request, pod_id)
    return _run(request, pod, services.stop_pod, f"Stopping {pod.name}. Its volume is kept.")


@require_POST
@team_view("deploy")
def pod_start(request, pod_id: str):
    pod = _pod(request, pod_id)
    zero = request.POST.get("zero_gpus") == "1"
    text = f"Starting {pod.name}" + (" with 0 GPUs." if zero else ".")
    return _run(request, pod, services.start_pod, text, zero_gpus=zero)


@require_POST
@team_view("deploy")
def pod_restart(request, pod_id: str):
    pod = _pod(request, pod_id)
    return _run(request, pod, services.restart_pod, f"Restarting {pod.name}.")


@require_POST
@team_view("deploy")
def pod_terminate(request, pod_id: str):
    pod = _pod(request, pod_id)
    try:
        services.terminate_pod(actor=request.user, pod=pod)
    except services.PodError as error:
        messages.error(request, str(error))
        return redirect("pod_detail", request.team.slug, pod.public_id)
    messages.success(request, f"Terminating {pod.name}. Its volume is deleted.")
    return redirect("pod_list", request.team.slug)


@require_POST
@team_view("deploy")
def pod_rename(request, pod_id: str):
    pod = _pod(request, pod_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A pod name is 1 to 100 characters.")
        return redirect("pod_detail", request.team.slug, pod.public_id)
    return _run(request, pod, services.rename_pod, "Pod renamed.", name=form.cleaned_data["name"])


@require_POST
@team_view("deploy")
def pod_timer(request, pod_id: str):
    pod = _pod(request, pod_id)
    form = TimerForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect("pod_detail", request.team.slug, pod.public_id)
    action, hours = form.cleaned_data["action"], form.cleaned_data["hours"]
    text = f"{action.title()} timer set." if hours else f"{action.title()} timer cancelled."
    return _run(request, pod, services.schedule_pod, text, action=action, hours=hours)


# Deploy wizard ----------------------------------------------------------------------------

# What a member without the billing capability reads when credit refuses a deploy: the
# balance, runway and spend limit are the billing roles' to see (SPEC.md, the role matrix).
FUNDS_REFUSED = (
    "The team's credit or spend limit does not allow this pod. Ask a team member with billing "
    "access to add credit or raise the limit."
)


def _wizard_data(request):
    """The wizard's current answers, after the button that was pressed (add or remove an env
    row, pick a template) has been applied."""
    data = request.POST.copy() if request.method == "POST" else request.GET.copy()
    for key, value in WIZARD_DEFAULTS.items():
        data.setdefault(key, value)
    action = data.get("action", "")
    if action == "add_env":
        with_env_row_added(data)
    elif action.startswith("remove_env_"):
        with_env_row_removed(data, action)
    template_id = lookup_text(data.get("template"))
    if template_id and template_id != data.get("applied_template"):
        template = PodTemplate.objects.visible_to(request.team).filter(public_id=template_id)
        if template.exists():
            apply_template(data, template.get())
    return data


def _lookup(queryset, value):
    key = lookup_text(value)
    return queryset.filter(public_id=key).first() if key else None


def _where(team, data) -> Where:
    """Where the answers allow the pod to go: cloud, data centre, the network volume's data
    centre and the runtimes the template runs on."""
    template = _lookup(PodTemplate.objects.visible_to(team), data.get("template"))
    cloud = data.get("cloud_type")
    return Where(
        cloud_type=cloud if cloud in CloudType.values else None,
        data_center=lookup_text(data.get("data_center")),
        volume=_lookup(NetworkVolume.objects.for_team(team), data.get("network_volume")),
        runtimes=tuple(template.runtimes) if template else (),
        on_demand=data.get("pricing") != Pod.Pricing.SPOT,
        team=team,
    )


def _gpu_cards(data, where: Where, *, fit_count: bool) -> tuple[list[dict], list[int]]:
    """The picker's cards, each with its free count or the reason it cannot be placed, and
    the GPU counts one machine of the selected type holds. With `fit_count` (while the wizard
    is filled in, not on Deploy) a count above those becomes the largest, as the select shows."""
    offers = gpu_offers(where)
    selected = lookup_text(data.get("gpu_type"))
    min_vram = bounded_int(data.get("min_vram"), low=0, high=1024) or 0  # the form says why
    shown = Q(memory_gb__gte=min_vram)
    if selected:
        shown |= Q(id=selected)  # the chosen type stays on the grid: the review prices it
    cards, allowed = [], [1]
    for gpu in GpuType.objects.filter(shown, is_active=True):
        offer = offers.get(gpu.id, NO_MACHINES)
        cards.append({"gpu": gpu, "offer": offer, "free": offer.free, "available": offer.available})
        if gpu.id == selected:
            allowed = list(range(1, offer.largest + 1)) or [1]
    count = bounded_int(data.get("gpu_count"), low=1, high=MAX_GPUS)
    if fit_count and count and count > allowed[-1]:
        data["gpu_count"] = str(count := allowed[-1])
    for card in cards:
        offer = card["offer"]
        if card["gpu"].id == selected and offer.available and count and count > offer.best:
            card["warning"] = f"At most {offer.best} free on one machine; you chose {count}."
    return cards, allowed


def _blocked(form: DeployForm, cards: list[dict]) -> str:
    """Why the chosen GPU type cannot be placed as asked, before Deploy is pressed."""
    if form.cleaned_data.get("compute") != "gpu":
        return ""
    gpu = form.cleaned_data.get("gpu_type")
    card = next((c for c in cards if gpu and c["gpu"].id == gpu.id), None)
    return (card["offer"].reason or card.get("warning", "")) if card else ""


def _review(request, form: DeployForm, cards: list[dict]) -> dict:
    """Compute, storage and total per hour; balance and runway only for billing roles."""
    pod = form.to_request()
    price = pod.price()
    verdict = services.affordability(team=request.team, extra=price.total, lock=False)
    volume = pod.network_volume
    review = {
        "price": price,
        "verdict": verdict,
        "blocked": _blocked(form, cards),
        "volume": volume,
        "volume_price": network_volume_per_hour(volume.size_gb) if volume else None,
        "balance": None,
        "refused_for_member": FUNDS_REFUSED,
    }
    if request.membership.can("billing"):
        balance = get_account(request.team).balance
        burn = verdict.burn_rate + price.total
        hours = balance / burn if burn > 0 and balance > 0 else None
        days = hours / 24 if hours else None
        review.update(balance=balance, burn=burn, runway_hours=hours, runway_days=days)
    return review


def _deploy(request, form: DeployForm) -> Pod | None:
    try:
        return services.deploy_pod(actor=request.user, team=request.team, request=form.to_request())
    except services.PodError as error:
        message = str(error)
        if error.code == "funds" and not request.membership.can("billing"):
            message = FUNDS_REFUSED
        form.add_error(error.field if error.field in form.fields else None, message)
        return None


@team_view("deploy")
def pod_deploy(request):
    data = _wizard_data(request)
    deploying = request.method == "POST" and data.get("action") == "deploy"
    cards, allowed_counts = _gpu_cards(data, _where(request.team, data), fit_count=not deploying)
    form = DeployForm(data, team=request.team, gpu_counts=allowed_counts)
    valid = form.is_valid()
    if deploying and valid:
        pod = _deploy(request, form)
        if pod is not None:
            messages.success(request, f"Deploying {pod.name} ({pod.public_id}).")
            if request.htmx:
                return HttpResponse(status=204, headers={"HX-Redirect": pod.get_absolute_url()})
            return redirect(pod.get_absolute_url())
    elif not deploying:
        form.hide_required_errors()
    context = {
        "form": form,
        "cards": cards,
        "review": _review(request, form, cards) if valid and not form.errors else None,
        "selected_gpu": data.get("gpu_type", ""),
    }
    if request.htmx:  # a change or a refused Deploy: only what depends on the answers
        return _render(request, "pods/partials/deploy_live.html", context)
    templates = list(form.fields["template"].queryset)
    context |= {
        "templates": templates,
        "presets": {t.public_id: template_preset(t) for t in templates},
        "cpu_types": CpuInstanceType.objects.all(),
        "vram_steps": [16, 24, 48, 80],
    }
    status = 400 if form.errors and deploying else 200
    return _render(request, "pods/deploy.html", context, status=status)


# Templates --------------------------------------------------------------------------------


def _team_template(request, template_id: str) -> PodTemplate:
    return get_object_or_404(PodTemplate, team=request.team, public_id=template_id)


@team_view("use")
def template_list(request):
    visible = PodTemplate.objects.visible_to(request.team).select_related("team")
    context = {
        "official": visible.filter(team=None),
        "mine": visible.filter(team=request.team),
        "community": visible.filter(is_public=True).exclude(team=None).exclude(team=request.team),
        "offered": set(visible.offered().values_list("pk", flat=True)),
    }
    return _render(request, "pods/template_list.html", context)


@team_view("deploy")
def template_create(request):
    form = TemplateForm(request.POST or None)
    if request.method == "POST" and request.POST.get("action") == "add_env":
        form = TemplateForm(_with_extra_env_row(request.POST))
    elif request.method == "POST" and form.is_valid():
        template = services.create_template(actor=request.user, team=request.team, **form.values())
        messages.success(request, f"Template {template.name} created.")
        return redirect("template_list", request.team.slug)
    return _render(request, "pods/template_form.html", {"form": form, "template": None})


def _with_extra_env_row(post):
    data = post.copy()
    with_env_row_added(data)
    return data


@team_view("deploy")
def template_edit(request, template_id: str):
    template = _team_template(request, template_id)
    form = TemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and request.POST.get("action") == "add_env":
        form = TemplateForm(_with_extra_env_row(request.POST), instance=template)
    elif request.method == "POST" and form.is_valid():
        services.update_template(actor=request.user, template=template, **form.values())
        messages.success(request, f"Template {template.name} saved.")
        return redirect("template_list", request.team.slug)
    return _render(request, "pods/template_form.html", {"form": form, "template": template})


@require_POST
@team_view("deploy")
def template_delete(request, template_id: str):
    template = _team_template(request, template_id)
    services.delete_template(actor=request.user, template=template)
    messages.success(request, f"Template {template.name} deleted. Pods made from it keep running.")
    return redirect("template_list", request.team.slug)


# Storage ----------------------------------------------------------------------------------


@team_view("use")
def storage(request):
    return _storage_page(request, None)


def _storage_page(request, form: NetworkVolumeForm | None):
    attached = Prefetch("pods", Pod.objects.live(), to_attr="live_pods")
    volumes = (
        NetworkVolume.objects.for_team(request.team)
        .select_related("data_center")
        .prefetch_related(attached)
    )
    rows = [
        {"volume": v, "pods": v.live_pods, "price": network_volume_per_hour(v.size_gb)}
        for v in volumes
    ]
    pods = (
        Pod.objects.for_team(request.team)
        .user_pods()
        .live()
        .filter(volume_gb__gt=0, network_volume=None)
        .select_related("machine", "gpu_type", "cpu_instance")
    )
    context = {
        "volumes": rows,
        "pod_volumes": [{"pod": p, "price": p.price().storage} for p in pods],
        "form": form or NetworkVolumeForm(),
        "grow_form": GrowVolumeForm(),
    }
    return _render(request, "pods/storage.html", context, status=400 if form else 200)


@require_POST
@team_view("deploy")
def network_volume_create(request):
    form = NetworkVolumeForm(request.POST)
    if not form.is_valid():
        return _storage_page(request, form)
    volume = services.create_network_volume(
        actor=request.user, team=request.team, **form.cleaned_data
    )
    messages.success(request, f"Network volume {volume.name} created in {volume.data_center_id}.")
    return redirect("storage", request.team.slug)


@require_POST
@team_view("deploy")
def network_volume_grow(request, volume_id: str):
    volume = get_object_or_404(NetworkVolume, team=request.team, public_id=volume_id)
    form = GrowVolumeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter the new size in GB (a whole number).")
        return redirect("storage", request.team.slug)
    try:
        services.grow_network_volume(
            actor=request.user, volume=volume, size_gb=form.cleaned_data["size_gb"]
        )
    except services.PodError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{volume.name} now has {form.cleaned_data['size_gb']} GB.")
    return redirect("storage", request.team.slug)


@require_POST
@team_view("deploy")
def network_volume_delete(request, volume_id: str):
    volume = get_object_or_404(NetworkVolume, team=request.team, public_id=volume_id)
    try:
        services.delete_network_volume(actor=request.user, volume=volume)
    except services.PodError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Network volume {volume.name} deleted.")
    return redirect("storage", request.team.slug)
