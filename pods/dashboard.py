"""The pods card on the console dashboard (registered in PodsConfig.ready)."""

from django.urls import reverse

from billing.money import format_usd
from pods.models import Pod
from pods.services import team_burn_rate


def pods_card(request) -> dict | None:
    if not request.membership.can("use"):
        return None
    pods = Pod.objects.for_team(request.team).user_pods().live()
    running = pods.filter(status=Pod.Status.RUNNING).count()
    total = pods.count()
    return {
        "title": "Pods",
        "value": f"{running} running",
        "detail": f"{total} in total · {format_usd(team_burn_rate(request.team), 3)}/h",
        "url": reverse("pod_list", args=[request.team.slug]),
        "icon": "hdd-stack",
    }
