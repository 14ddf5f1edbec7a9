from django.conf import settings
from django.urls import NoReverseMatch, reverse

from teams.access import CAPABILITIES, role_can
from teams.models import Membership

# (label, icon, url name, capability). A section whose URL is not there yet says "coming".
# A url name may be a list of (url name, capability): the first one the role can open.
NAVIGATION = [
    ("Dashboard", "speedometer2", "dashboard", "member"),
    ("Pods", "hdd-stack", "pod_list", "use"),
    ("Serverless", "lightning-charge", "endpoint_list", "use"),
    ("Templates", "layers", "template_list", "use"),
    ("Storage", "database", "storage", "use"),
    ("Billing", "credit-card", "billing", "billing"),
    # The supply side: machines a vetted host team lists (the page says how to apply).
    ("Hosting", "server", "hosting", "use"),
    # The signed-in person's own link and commissions, not the team's: every role.
    ("Referrals", "gift", "referrals", "member"),
    ("Team", "people", "members", "member"),
    ("Settings", "gear", [("settings", "admin"), ("ssh_keys", "use")], "use"),
    ("Audit log", "journal-text", "audit_log", "admin"),
]


# Pages that light up a section other than the one their own url name names.
SECTION_OF = {"api_keys": "settings", "registry_credentials": "settings"}


def _first_allowed(name, role: str) -> str:
    if isinstance(name, str):
        return name
    return next(url_name for url_name, capability in name if role_can(role, capability))


def _nav(team_slug: str, role: str, current: str) -> list[dict]:
    current = SECTION_OF.get(current, current)
    items = []
    for label, icon, name, capability in NAVIGATION:
        if not role_can(role, capability):
            continue
        url_name = _first_allowed(name, role)
        try:
            url = reverse(url_name, args=[team_slug])
        except NoReverseMatch:
            url = None
        names = {name} if isinstance(name, str) else {url_name for url_name, _ in name}
        items.append({"label": label, "icon": icon, "url": url, "active": current in names})
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
        caps={capability: role_can(membership.role, capability) for capability in CAPABILITIES},
    )
    return context
