"""The referrals page: the person's own link, the people who signed up through it, what each
program earned them by month, and where the money goes. It is about the signed-in person, not
the team, so every member may open it (capability "member")."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from referrals import reports, services
from referrals.forms import PayoutTeamForm
from referrals.models import Referrer
from teams.access import team_view


@team_view("member")
def referrals(request):
    user = request.user
    months = reports.by_month(user)
    programs = reports.live_programs()
    chosen = Referrer.objects.filter(user=user).values_list("payout_team__slug", flat=True).first()
    context = {
        "link": request.build_absolute_uri(f"/?ref={user.referral_code}"),
        "totals": reports.totals(user),
        "referred": reports.referred_users(user),
        "templates": reports.template_earnings(user),
        "months": list(reversed(months)),
        "chart_data": reports.chart_data(months),
        "programs": programs,
        "example": reports.worked_example(programs),
        "payout_form": PayoutTeamForm(user=user, initial={"team": chosen or ""}),
        "payout_team": services.payout_team(user),
    }
    return render(request, "referrals/referrals.html", context)


@require_POST
@team_view("member")
def payout_team(request):
    form = PayoutTeamForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, "Choose one of your teams.")
        return redirect("referrals", request.team.slug)
    team = form.chosen_team()
    try:
        services.set_payout_team(user=request.user, team=team)
    except services.ReferralError as error:
        messages.error(request, str(error))
    else:
        target = team.name if team else "your personal account"
        messages.success(request, f"Future commissions will be credited to {target}.")
    return redirect("referrals", request.team.slug)
