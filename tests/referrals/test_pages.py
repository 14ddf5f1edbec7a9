"""The referrals page, the payout choice and template earnings on template cards."""

import json
from decimal import Decimal

from django.urls import reverse

from billing.services import post_entry
from pods.metering import meter
from referrals.commissions import process
from referrals.models import Referrer
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import posted_by
from tests.referrals.conftest import (
    HOUR,
    T0,
    gpu_machine,
    new_account,
    public_template,
    referred,
    running_pod,
)


def page(user, team):
    return login(user).get(reverse("referrals", args=[team.slug]))


def test_it_shows_the_link_with_a_copy_button_and_the_rules(alice, team, programs):
    response = page(alice, team)
    html = response.content.decode()
    assert f"http://testserver/?ref={alice.referral_code}" in html
    assert 'data-copy="#referral-link"' in html
    assert "3 %" in html and "5 %" in html and "1 %" in html
    example = " ".join(html.split('data-testid="worked-example">')[1].split("</p>")[0].split())
    assert "20 × $100.00 = $2,000.00 of pod spend" in example
    assert "<strong>$60.00</strong>" in example
    assert "No commissions yet" in html


def test_it_lists_referred_users_masked_with_their_spend_and_earnings(alice, team, programs):
    friend = referred(alice, "zoe@example.com")
    running_pod(friend, gpu_machine("2.00"))
    meter(until=posted_by(T0 + HOUR, friend))
    post_entry(
        team=friend,
        amount=Decimal("-10"),
        kind="usage_serverless",
        idempotency_key="endpoint:e1:1",
        description="Serverless",
        source_type="endpoint",
        source_id="e1",
    )
    process()

    response = page(alice, team)

    html = response.content.decode()
    assert "z***@example.com" in html
    assert "zoe@example.com" not in html
    row = html.split('data-testid="referred-user">')[1].split("</tr>")[0]
    assert "$2.00" in row and "$10.00" in row and "$0.56" in row  # 0.06 + 0.50
    chart = json.loads(
        html.split('id="referral-chart-data" type="application/json">')[1].split("<")[0]
    )
    assert chart["labels"] == ["Nov 2026"]
    values = {d["label"]: d["values"] for d in chart["datasets"]}
    assert values == {"Pods": ["0.06"], "Serverless": ["0.5"]}
    assert 'data-month="2026-11"' in html


def test_it_shows_only_the_viewers_own_referrals(alice, bob, team, programs):
    referred(alice, "zoe@example.com")
    html = page(bob, team).content.decode()
    assert "z***@example.com" not in html
    assert 'data-testid="referred-count">0<' in html


def test_it_sends_future_commissions_to_a_chosen_team(alice, team, programs):
    client = login(alice)
    response = client.post(reverse("referrals_payout", args=[team.slug]), {"team": team.slug})
    assert response.status_code == 302
    assert Referrer.objects.get(user=alice).payout_team == team
    event = AuditEvent.objects.get(action="referral.payout_team_changed")
    assert event.team == team and event.details["team"] == "acme"
    html = client.get(reverse("referrals", args=[team.slug])).content.decode()
    assert "Now going to <strong>Acme</strong>" in html

    client.post(reverse("referrals_payout", args=[team.slug]), {"team": ""})
    assert Referrer.objects.get(user=alice).payout_team is None


def test_it_refuses_a_team_the_user_does_not_belong_to(alice, team, charlie, programs):
    other = charlie.memberships.get().team
    response = login(alice).post(
        reverse("referrals_payout", args=[team.slug]), {"team": other.slug}, follow=True
    )
    assert "Choose one of your teams." in response.content.decode()
    assert not Referrer.objects.filter(user=alice, payout_team=other).exists()


def test_a_public_template_shows_its_earnings_to_its_creator_only(alice, bob, team, programs):
    template = public_template(alice, team)
    _, other_team = new_account("runner@example.com")
    running_pod(other_team, gpu_machine("0.54"), template=template)
    meter(until=posted_by(T0 + 25 * HOUR, other_team))
    process()
    url = reverse("template_list", args=[team.slug])

    mine = login(alice).get(url).content.decode()
    assert 'data-testid="template-earnings"' in mine
    assert "You earned <strong>$0.01</strong>" in mine  # $0.0054 for the 25th hour

    assert 'data-testid="template-earnings"' not in login(bob).get(url).content.decode()
    runner = other_team.memberships.get().user
    other_url = reverse("template_list", args=[other_team.slug])
    theirs = login(runner).get(other_url).content.decode()
    assert "Stable Diffusion" in theirs
    assert 'data-testid="template-earnings"' not in theirs


def test_a_new_template_says_how_much_runtime_it_still_needs(alice, team, programs):
    template = public_template(alice, team)
    _, other_team = new_account("runner@example.com")
    running_pod(other_team, gpu_machine("0.54"), template=template)
    meter(until=posted_by(T0 + 6 * HOUR, other_team))

    html = login(alice).get(reverse("template_list", args=[team.slug])).content.decode()

    assert "Commissions start after 24 h of runtime across all pods; it has run 6.0 h." in html


def test_it_states_the_template_runtime_rule_in_plain_words(alice, team, programs):
    html = page(alice, team).content.decode()
    assert "once pods from it have run 1 day in total" in html
