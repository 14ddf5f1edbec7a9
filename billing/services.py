"""Every write to a team's money. `post_entry` is the one path into the ledger; everything else
(top-ups, auto-recharge, invoices, staff credit, usage charges from pods) goes through it."""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from billing.burn import burn_rate
from billing.models import BillingAccount, LedgerEntry
from billing.money import ZERO, Amount, ceil_cents, format_usd, to_money
from teams import audit
from teams.models import Team

log = logging.getLogger(__name__)

# Hooks run (on commit) with the team id after every entry: auto-recharge and low-balance
# alerts register here (BillingConfig.ready) so this module stays free of Stripe and e-mail.
BALANCE_HOOKS: list = []


def get_account(team: Team, *, lock: bool = False) -> BillingAccount:
    """The team's billing account, created on first use. lock=True must run inside a
    transaction: it holds the row until commit, which serialises every money decision."""
    account, _ = BillingAccount.objects.get_or_create(team=team)
    if lock:
        account = BillingAccount.objects.select_for_update().get(pk=account.pk)
    return account


def _check_sign(kind: str, amount: Decimal) -> None:
    if amount == 0:
        raise ValueError("A ledger entry cannot be zero.")
    if kind in LedgerEntry.CREDIT_KINDS and amount < 0:
        raise ValueError(f"{kind} entries must be positive.")
    if kind in LedgerEntry.USAGE_KINDS and amount > 0:
        raise ValueError(f"{kind} entries must be negative.")
    if kind not in LedgerEntry.Kind.values:
        raise ValueError(f"Unknown ledger kind {kind!r}")


def post_entry(
    *,
    team: Team,
    amount: Amount,
    kind: str,
    idempotency_key: str,
    description: str,
    source_type: str = "",
    source_id: str = "",
    actor=None,
) -> LedgerEntry | None:
    """Append one entry and move the balance with it, once per idempotency key.

    Returns the new entry, or None when the key was already posted (nothing changes). Safe under
    concurrency: the account row lock serialises posts for a team, and the unique key inside a
    savepoint catches a duplicate from anywhere else.
    """
    amount = to_money(amount)
    _check_sign(kind, amount)
    with transaction.atomic():
        account = get_account(team, lock=True)
        if LedgerEntry.objects.filter(idempotency_key=idempotency_key).exists():
            return None
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    team=team,
                    amount=amount,
                    balance_after=account.balance + amount,
                    kind=kind,
                    idempotency_key=idempotency_key,
                    description=description[:255],
                    source_type=source_type,
                    source_id=str(source_id),
                    actor=actor if getattr(actor, "is_authenticated", False) else None,
                )
        except IntegrityError:
            if LedgerEntry.objects.filter(idempotency_key=idempotency_key).exists():
                return None
            raise
        _apply_to_account(account, entry)
        _audit_entry(entry, actor)
        if BALANCE_HOOKS:
            transaction.on_commit(lambda: _run_balance_hooks(team.pk))
    return entry


def _apply_to_account(account: BillingAccount, entry: LedgerEntry) -> None:
    account.balance = entry.balance_after
    fields = ["balance"]
    if entry.kind in LedgerEntry.PAID_KINDS:
        account.paid_total += entry.amount
        fields.append("paid_total")
    account.save(update_fields=fields)


def _audit_entry(entry: LedgerEntry, actor) -> None:
    # Per-minute usage would flood the audit log; those rows are their own immutable record.
    if entry.kind in LedgerEntry.USAGE_KINDS:
        return
    audit.record(
        actor=actor,
        team=entry.team,
        action=f"billing.ledger.{entry.kind}",
        resource_type="ledger_entry",
        resource_id=entry.public_id,
        details={
            "amount": str(entry.amount),
            "balance_after": str(entry.balance_after),
            "description": entry.description,
            "source": f"{entry.source_type}:{entry.source_id}".strip(":"),
        },
    )


def _run_balance_hooks(team_id: int) -> None:
    for hook in BALANCE_HOOKS:
        try:
            hook(team_id)
        except Exception:
            # A failing side effect (e-mail, Stripe) must never undo or block a charge.
            log.exception("balance hook %r failed for team %s", hook, team_id)


@dataclass(frozen=True)
class Affordability:
    ok: bool
    reason: str = ""
    shortfall: Decimal = ZERO
    burn_rate: Decimal = ZERO
    limit: Decimal = ZERO

    def __bool__(self) -> bool:
        return self.ok


def can_afford(*, team: Team, extra_cost_per_hour: Amount, lock: bool = False) -> Affordability:
    """May the team add `extra_cost_per_hour` of running resources?

    Refused when the new total burn rate would exceed the hourly spend limit, or when the
    balance does not cover one hour at the new total. With lock=True (inside the caller's
    transaction) concurrent deploys for one team queue on the account row, and the burn rate is
    read after the lock so each sees the others' committed resources.
    """
    extra = to_money(extra_cost_per_hour)
    account = get_account(team, lock=lock)
    current = burn_rate(team)
    total = current + extra
    limit = account.spend_limit_per_hour
    if total > limit:
        over = total - limit
        return Affordability(
            ok=False,
            reason=(
                f"This would bring your spend to {format_usd(total, 4)}/h, over your team's "
                f"spend limit of {format_usd(limit)}/h by {format_usd(over, 4)}/h."
            ),
            shortfall=over,
            burn_rate=current,
            limit=limit,
        )
    if account.balance < total:
        missing = total - account.balance
        top_up = format_usd(ceil_cents(missing))
        return Affordability(
            ok=False,
            reason=(
                f"Your balance of {format_usd(account.balance)} does not cover one hour at "
                f"{format_usd(total, 4)}/h; add at least {top_up} of credit."
            ),
            shortfall=missing,
            burn_rate=current,
            limit=limit,
        )
    return Affordability(ok=True, burn_rate=current, limit=limit)


def adjust_balance(*, team: Team, amount: Amount, reason: str, actor, key: str = "") -> LedgerEntry:
    """A staff correction or grant: always a new entry with the reason, never an edit."""
    reason = reason.strip()
    if not reason:
        raise ValueError("An adjustment needs a reason.")
    amount = to_money(amount)
    kind = LedgerEntry.Kind.ADJUSTMENT
    entry = post_entry(
        team=team,
        amount=amount,
        kind=kind,
        idempotency_key=key or f"adjustment:{uuid.uuid4()}",
        description=reason,
        source_type="staff",
        source_id=getattr(actor, "email", "") or "system",
        actor=actor,
    )
    if entry is None:
        raise ValueError("This adjustment was already posted.")
    return entry


@transaction.atomic
def set_spend_limit_override(*, team: Team, limit: Amount | None, actor) -> BillingAccount:
    account = get_account(team, lock=True)
    account.spend_limit_override = to_money(limit) if limit not in (None, "") else None
    account.save(update_fields=["spend_limit_override"])
    audit.record(
        actor=actor,
        team=team,
        action="billing.spend_limit.override",
        resource_type="billing_account",
        resource_id=team.slug,
        details={"limit": str(account.spend_limit_override) if limit else "automatic"},
    )
    return account


def track_depletion(*, now) -> None:
    """Note when balances reach zero and forget it when they recover (runs after each tick)."""
    BillingAccount.objects.filter(balance__lte=0, depleted_since=None).update(depleted_since=now)
    BillingAccount.objects.filter(balance__gt=0).exclude(depleted_since=None).update(
        depleted_since=None, depletion_warned_at=None
    )


def begin_low_funds_episode(*, team: Team, now) -> bool:
    """Note that the team is short of funds since `now`. True when this begins an episode
    (the caller audits it and tells the team), False while one is already under way; the
    conditional update makes two ticks at once agree on which of them begins it."""
    get_account(team)
    started = BillingAccount.objects.filter(team=team, low_funds_since=None)
    return started.update(low_funds_since=now) == 1


def funded_low_funds_episodes() -> list[int]:
    """Teams in a low-funds episode that received money (a credit, a positive adjustment)
    since it began."""
    credit_since = LedgerEntry.objects.filter(
        team=OuterRef("team"), amount__gt=0, created_at__gte=OuterRef("low_funds_since")
    )
    accounts = BillingAccount.objects.exclude(low_funds_since=None).filter(Exists(credit_since))
    return sorted(accounts.values_list("team_id", flat=True))


def end_low_funds_episodes(*, team_ids: list[int]) -> None:
    """The teams are funded again: their next shortage begins a new episode."""
    accounts = BillingAccount.objects.filter(team_id__in=team_ids).exclude(low_funds_since=None)
    for account in accounts.select_related("team").order_by("pk"):
        with transaction.atomic():
            ended = BillingAccount.objects.filter(
                pk=account.pk, low_funds_since=account.low_funds_since
            ).update(low_funds_since=None)
            if ended:
                audit.record(
                    actor=None,
                    team=account.team,
                    action="billing.low_funds.ended",
                    resource_type="billing_account",
                    resource_id=account.team.slug,
                    details={"since": account.low_funds_since.isoformat()},
                )
