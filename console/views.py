from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from teams.access import team_view
from teams.models import Team


@login_required
def home(request):
    """Send the user to the team they used last, else to their first team."""
    teams = Team.objects.for_user(request.user)
    team = teams.filter(slug=request.session.get("team")).first() or teams.first()
    if team is None:
        from teams.services import create_personal_team

        team = create_personal_team(user=request.user)
    return redirect("dashboard", team.slug)


@team_view("member")
def dashboard(request):
    return render(request, "console/dashboard.html", {"cards": dashboard_cards(request)})


def dashboard_cards(request) -> list[dict]:
    """Apps contribute dashboard cards through `dashboard_card(request)` hooks listed here."""
    from console.dashboard import collect_cards

    return collect_cards(request)


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
