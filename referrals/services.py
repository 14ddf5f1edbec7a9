"""Every write of the referral programs except commission processing (referrals.commissions):
attributing a signup, choosing where commissions go, staff edits of programs and adjustments."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from billing.services import adjust_balance
from referrals.commissions import payout_team_ids
from referrals.models import Commission, CommissionKind, Program, Referral, Referrer
from teams import audit
from teams.models import Membership, Team, User


class ReferralError(Exception):
    """A rule of the referral programs was broken; the message is shown as is."""


def referrer_for_code(code: str | None) -> User | None:
    """The active user whose referral code this is (codes are compared as typed)."""
    if not code or len(code) > 16 or not code.isalnum():
        return None
    return User.objects.filter(referral_code=code, is_active=True).first()


def same_mailbox(first: str, second: str) -> bool:
    """alice@example.com and Alice+2@Example.com are one person's mailbox."""

    def normal(email: str) -> str:
        local, _, domain = email.strip().lower().partition("@")
        return f"{local.split('+')[0]}@{domain}"

    return normal(first) == normal(second)


@transaction.atomic
def attribute_signup(*, user: User, team: Team, code: str) -> Referral | None:
    """Credit `code`'s owner with a new signup. Only the account created at signup counts;
    self-referrals (the same mailbox) and users already referred are refused (None)."""
    referrer = referrer_for_code(code)
    if referrer is None or referrer.pk == user.pk or same_mailbox(referrer.email, user.email):
        return None
    if Referral.objects.filter(referred_user=user).exists():
        return None
    if Membership.objects.filter(team=team).exclude(user=user).exists():
        return None
    referral = Referral.objects.create(referrer=referrer, referred_user=user, team=team, code=code)
    Referrer.objects.get_or_create(user=referrer)
    audit.record(
        actor=user,
        team=team,
        action="referral.attributed",
        resource_type="referral",
        resource_id=referral.public_id,
        details={"code": code},
    )
    return referral


def attribute_signup_from_request(*, request, user: User, team: Team) -> None:
    """teams.signup hook: the referral cookie (set by ReferralCookieMiddleware) names the
    referrer of the account just created."""
    code = request.COOKIES.get(settings.REFERRAL_COOKIE_NAME) if request is not None else None
    if code:
        attribute_signup(user=user, team=team, code=code)


def payout_team(user: User) -> Team | None:
    team_id = payout_team_ids([user.pk]).get(user.pk)
    return Team.objects.filter(pk=team_id).first() if team_id else None


@transaction.atomic
def set_payout_team(*, user: User, team: Team | None) -> Referrer:
    """Send future commissions to `team` (one the user belongs to), or None for the personal
    account. Commissions already credited stay where they are."""
    if team is not None and not Membership.objects.filter(user=user, team=team).exists():
        raise ReferralError("You can only send commissions to a team you belong to.")
    referrer, _ = Referrer.objects.select_for_update().get_or_create(user=user)
    old = referrer.payout_team
    if old == team:
        return referrer
    referrer.payout_team = team
    referrer.save(update_fields=["payout_team"])
    audit.record(
        actor=user,
        team=team or payout_team(user),
        action="referral.payout_team_changed",
        resource_type="referrer",
        resource_id=user.referral_code,
        details={
            "old_team": old.slug if old else "personal account",
            "team": team.slug if team else "personal account",
        },
    )
    return referrer


PROGRAM_FIELDS = ("kind", "name", "rate", "starts_on", "ends_on", "min_template_runtime")


@transaction.atomic
def save_program(*, program: Program, actor, changed: list[str] | None = None) -> Program:
    """Staff create or edit a program (the admin site). Changes apply to spend not yet
    processed; commissions already written keep the rate they were computed with."""
    created = program.pk is None
    program.full_clean()
    program.save()
    fields = PROGRAM_FIELDS if created else [f for f in (changed or []) if f in PROGRAM_FIELDS]
    audit.record(
        actor=actor,
        team=None,
        action="referral_program.created" if created else "referral_program.changed",
        resource_type="referral_program",
        resource_id=program.public_id,
        details={name: str(getattr(program, name)) for name in fields},
    )
    return program


@transaction.atomic
def adjust_commissions(*, user: User, amount: Decimal, reason: str, actor) -> Commission:
    """A staff correction of someone's commissions: a ledger adjustment on their payout team
    (billing.services.adjust_balance, audited there) and a commission row that shows it on
    their referrals page."""
    team = payout_team(user)
    if team is None:
        raise ReferralError(f"{user.email} belongs to no team that could receive it.")
    entry = adjust_balance(
        team=team,
        amount=amount,
        reason=f"Referral commission adjustment: {reason.strip()}",
        actor=actor,
        key=f"referral_adjustment:{uuid.uuid4()}",
    )
    Referrer.objects.get_or_create(user=user)
    return Commission.objects.create(
        key=f"adjustment:{entry.public_id}",
        kind=CommissionKind.ADJUSTMENT,
        earner=user,
        amount=entry.amount,
        team=team,
        ledger_entry=entry,
        earned_at=entry.created_at,
    )
