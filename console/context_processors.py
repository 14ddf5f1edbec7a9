from django.conf import settings
from django.urls import NoReverseMatch, reverse

from teams.access import role_can
from teams.models import Membership

# (label, icon, url name, capability). A section whose URL is not there yet says "coming".
NAVIGATION = [
    ("Dashboard", "speedometer2", "dashboard", "member"),
    ("Pods", "hdd-stack", "pod_list", "use"),
    ("Serverless", "lightning-charge", "endpoint_list", "use"),
    ("Templates", "layers", "template_list", "use"),
    ("Storage", "database", "storage", "use"),
    ("Billing", "credit-card", "billing", "billing"),
    ("Team", "people", "members", "member"),
    ("Settings", "gear", "settings", "admin"),
    ("Audit log", "journal-text", "audit_log", "admin"),
]


def _nav(team_slug: str, role: str, current: str) -> list[dict]:
    items = []
    for label, icon, name, capability in NAVIGATION:
        if not role_can(role, capability):
            continue
        try:
            url = reverse(name, args=[team_slug])
        except NoReverseMatch:
            url = None
        items.append({"label": label, "icon": icon, "url": url, "active": current == name})
    return items


def console(request) -> dict:
    context = {"SITE_NAME": settings.SITE_NAME, "DEBUG": settings.DEBUG}
    membership = getattr(request, "membership", None)
    if membership is None and request.user.is_authenticated and request.session.get("team"):
        # Pages outside a team (account settings, invite links) keep the last team's sidebar.
        membership = (
            Membership.objects.select_related("team")
            .filter(user=request.user, team__slug=request.session["team"])
            .first()
        )
    if membership is None or not request.user.is_authenticated:
        return context
    match = getattr(request, "resolver_match", None)
    current = match.url_name if match else ""
    memberships = Membership.objects.filter(user=request.user).select_related("team")
    context.update(
        team=membership.team,
        membership=membership,
        my_memberships=memberships,
        nav=_nav(membership.team.slug, membership.role, current),
    )
    return context
