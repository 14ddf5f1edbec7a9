"""Connect pages: the web terminal, who may open the proxy, SSH keys, registry credentials, and
the console half of the proxy's sign-in on pod hosts. Thin: access, form or service, redirect."""

from __future__ import annotations

from urllib.parse import quote

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pods.connect import proxy, services
from pods.connect.forms import ProxyAccessForm, RegistryCredentialForm, SshKeyForm
from pods.models import Pod, RegistryCredential, SshKey
from teams.access import role_can, team_view
from teams.models import Membership


def _render(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    context["can_deploy"] = request.membership.can("deploy")
    return render(request, template, context, status=status)


def _pod(request, pod_id: str) -> Pod:
    queryset = Pod.objects.for_team(request.team).live().select_related("team", "machine")
    return get_object_or_404(queryset, public_id=pod_id)


# xterm.js draws with <style> elements it creates itself (no nonce option): this page alone.
@csp_update({"style-src": ["'unsafe-inline'"]})
@team_view("use")
def pod_terminal(request, pod_id: str) -> HttpResponse:
    pod = _pod(request, pod_id)
    return _render(request, "pods/connect/terminal.html", {"pod": pod})


@require_POST
@team_view("deploy")
def pod_proxy_access(request, pod_id: str) -> HttpResponse:
    pod = _pod(request, pod_id)
    form = ProxyAccessForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose team only or public.")
    else:
        pod = services.set_proxy_access(actor=request.user, pod=pod, access=form.data["access"])
        if pod.proxy_access == "public":
            messages.success(request, "Anyone with the link can now open this pod's HTTP ports.")
        else:
            messages.success(request, "Only members of your team can open this pod's HTTP ports.")
    return redirect("pod_detail", request.team.slug, pod.public_id)


@team_view("use")
def ssh_keys(request) -> HttpResponse:
    form = SshKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key = services.add_ssh_key(actor=request.user, team=request.team, **form.cleaned_data)
        except services.ConnectError as error:
            form.add_error(error.field, str(error))
        else:
            messages.success(request, f"SSH key {key.name} added. Pods started from now on get it.")
            return redirect("ssh_keys", request.team.slug)
    keys = SshKey.objects.filter(user=request.user)
    status = 400 if form.errors else 200
    return _render(request, "pods/connect/ssh_keys.html", {"form": form, "keys": keys}, status)


@require_POST
@team_view("use")
def ssh_key_delete(request, key_id: str) -> HttpResponse:
    key = SshKey.objects.filter(user=request.user, public_id=key_id).first()
    if key is None:
        messages.error(request, "That key is not on your account.")
    else:
        services.delete_ssh_key(actor=request.user, team=request.team, key=key)
        messages.success(
            request, f"SSH key {key.name} deleted. Running pods keep it until restarted."
        )
    return redirect("ssh_keys", request.team.slug)


@team_view("deploy")
def registry_credentials(request) -> HttpResponse:
    form = RegistryCredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credential = services.save_registry_credential(
                actor=request.user, team=request.team, **form.cleaned_data
            )
        except services.ConnectError as error:
            form.add_error(error.field, str(error))
        else:
            messages.success(request, f"Registry credential {credential.name} saved.")
            return redirect("registry_credentials", request.team.slug)
    credentials = RegistryCredential.objects.filter(team=request.team).select_related("created_by")
    context = {"form": form, "credentials": credentials}
    status = 400 if form.errors else 200
    return _render(request, "pods/connect/registries.html", context, status)


@require_POST
@team_view("deploy")
def registry_credential_delete(request, credential_id: str) -> HttpResponse:
    credential = get_object_or_404(RegistryCredential, team=request.team, public_id=credential_id)
    services.delete_registry_credential(actor=request.user, credential=credential)
    messages.success(request, f"Registry credential {credential.name} deleted.")
    return redirect("registry_credentials", request.team.slug)


@login_required
def proxy_auth(request, target: str) -> HttpResponse:
    """Signed in on the console, a member is sent on to the pod's host with a single-use,
    one-minute token that the proxy there turns into its own cookie (the console's cookies
    are host-only and never sent there). `next` may only be a path on that host."""
    parsed = proxy.Target.parse(target)
    base = parsed and proxy.host_url(parsed.pod_id, parsed.port)
    pods = Pod.objects.live().select_related("team")
    pod = pods.filter(public_id=parsed.pod_id).first() if base else None
    membership = pod and Membership.objects.filter(user=request.user, team_id=pod.team_id).first()
    if not membership or not role_can(membership.role, "use"):
        raise Http404("No such pod.")
    next_path = proxy.safe_next(request.GET.get("next", "/"))
    token = services.hand_off_to_pod_host(
        actor=request.user, pod=pod, target=parsed, next_path=next_path
    )
    response = redirect(f"{base.rstrip('/')}{proxy.HANDOFF_PATH}?token={quote(token)}")
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
