from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_GET

from console import dashboard as board
from console import front
from teams.access import team_view
from teams.models import Team


def home(request):
    """The public front page for visitors; signed-in people go to their dashboard."""
    if not request.user.is_authenticated:
        return front_page(request)
    return _to_last_team(request)


def front_page(request):
    response = render(request, "console/front.html", {"offers": front.offers()})
    # Shared caches may keep the page, except for a referral link (/?ref=...): its answer sets
    # the visitor's referral cookie (referrals.middleware), which must not be handed to others.
    audience = {"private": True} if request.GET else {"public": True}
    patch_cache_control(response, max_age=front.OFFERS_TTL, **audience)
    patch_vary_headers(response, ["Cookie"])
    return response


def _to_last_team(request):
    """Send the user to the team they used last, else to their first team."""
    teams = Team.objects.for_user(request.user)
    team = teams.filter(slug=request.session.get("team")).first() or teams.first()
    if team is None:
        from teams.services import create_personal_team

        team = create_personal_team(user=request.user)
    return redirect("dashboard", team.slug)


@team_view("member")
def dashboard(request):
    membership = request.membership
    steps = board.checklist(membership, request.user)
    context = {
        "cards": board.collect_cards(request),
        "steps": steps,
        "all_done": all(step.done for step in steps),
        "next_step": board.next_step(steps),
    }
    if membership.can("use"):
        context["pods"] = board.running_pods(request.team)
    if membership.can("billing"):
        context["spend"] = board.spend(request.team, _spend_window(request))
    return render(request, "console/dashboard.html", context)


def _spend_window(request) -> int:
    asked = request.GET.get("spend", "")
    windows = board.SPEND_WINDOWS
    return int(asked) if asked in {str(days) for days in windows} else windows[0]


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _broker_ok() -> bool:
    from console.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@require_GET
def healthz(request):
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    body = {"status": "ok" if healthy else "error"}
    body.update({name: "ok" if ok else "error" for name, ok in checks.items()})
    return JsonResponse(body, status=200 if healthy else 503)
