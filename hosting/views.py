"""The Hosting section: a host team's machines, their reliability and downtime, agent tokens
and maintenance. Access check -> form or service -> redirect or render."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from hosting import earnings, services
from hosting.forms import ImmediateMaintenanceForm, MachineForm, MaintenanceForm
from hosting.models import HostedMachine
from teams.access import team_view

NEW_TOKEN_SESSION = "hosting_new_token"


def _hosted(request, machine_id: str) -> HostedMachine:
    machines = HostedMachine.objects.filter(team=request.team).select_related("machine__gpu_type")
    return get_object_or_404(machines, machine__public_id=machine_id)


@team_view("use")
def hosting(request):
    machines = (
        HostedMachine.objects.filter(team=request.team)
        .select_related("machine__gpu_type", "machine__data_center")
        .order_by("created_at")
    )
    context = {"account": services.host_account(request.team), "machines": machines}
    return render(request, "hosting/overview.html", context)


@team_view("admin")
def hosting_machine_new(request):
    account = services.host_account(request.team)
    form = MachineForm(request.POST or None)
    if request.method == "POST" and account and account.can_list and form.is_valid():
        try:
            hosted = services.register_machine(
                actor=request.user, team=request.team, registration=form.registration()
            )
        except services.HostingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Machine registered. Staff review it before it is listed.")
            return redirect("hosting_machine", request.team.slug, hosted.public_id)
    context = {"account": account, "form": form}
    return render(request, "hosting/machine_new.html", context)


@team_view("use")
def hosting_machine(request, machine_id: str):
    hosted = _hosted(request, machine_id)
    now = timezone.now()
    context = {
        "hosted": hosted,
        "machine": hosted.machine,
        "downtime": services.counted_downtime(hosted, now=now),
        "maintenances": hosted.maintenances.filter(
            cancelled_at=None, ends_at__gte=now - services.WINDOW
        ),
        "maintenance_form": MaintenanceForm(),
        "immediate_form": ImmediateMaintenanceForm(),
        "new_token": request.session.pop(NEW_TOKEN_SESSION, None),
        "token": hosted.tokens.filter(revoked_at=None).first(),
        "heartbeat_timeout": int(services.HEARTBEAT_TIMEOUT.total_seconds()),
    }
    return render(request, "hosting/machine.html", context)


@require_POST
@team_view("admin")
def hosting_machine_token(request, machine_id: str):
    hosted = _hosted(request, machine_id)
    secret = services.rotate_token(actor=request.user, hosted=hosted)
    # Shown on exactly one page view; only its hash is stored.
    request.session[NEW_TOKEN_SESSION] = secret
    messages.success(request, "New agent token created; any older token stopped working.")
    return redirect("hosting_machine", request.team.slug, hosted.public_id)


def _book(request, hosted: HostedMachine, form) -> bool:
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return False
    data = form.cleaned_data
    try:
        if isinstance(form, ImmediateMaintenanceForm):
            services.book_immediate_maintenance(
                actor=request.user, hosted=hosted, hours=data["hours"], reason=data["reason"]
            )
        else:
            services.book_maintenance(
                actor=request.user,
                hosted=hosted,
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
            )
    except services.HostingError as error:
        messages.error(request, str(error))
        return False
    return True


@require_POST
@team_view("admin")
def hosting_maintenance(request, machine_id: str):
    hosted = _hosted(request, machine_id)
    immediate = request.POST.get("immediate") == "1"
    form = (ImmediateMaintenanceForm if immediate else MaintenanceForm)(request.POST)
    if _book(request, hosted, form):
        messages.success(request, "Maintenance booked.")
    return redirect("hosting_machine", request.team.slug, hosted.public_id)


@team_view("billing")
def hosting_earnings(request):
    lines = earnings.month_lines(request.team)
    context = {
        "lines": lines,
        "totals": earnings.totals(request.team, lines),
        "chart": earnings.chart(lines),
        "payouts": request.team.host_payouts.all()[:24],
        "fee_percent": int(earnings.SERVICE_FEE * 100),
    }
    return render(request, "hosting/earnings.html", context)
