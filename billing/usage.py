"""Set-based usage charges: the bulk write path into the ledger, for metering ticks.

A per-minute tick for 100,000 running pods cannot call `post_entry` 200,000 times (about 140 s
on this project's machines, ENVIRONMENT.md); it writes every charge of a batch in a handful of
statements instead, with the same guarantees as `post_entry`: one row per idempotency key, the
balance moved in the same transaction under the account row locks, balance = sum(entries).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction

from billing.models import BillingAccount, LedgerEntry
from billing.money import ZERO, to_money

# Columns the caller's SELECT must produce, in this order.
USAGE_COLUMNS = (
    "team_id",
    "amount",
    "kind",
    "idempotency_key",
    "source_type",
    "source_id",
    "description",
)
STAGE = "billing_usage_stage"


class UsageConflict(Exception):
    """Some charges of the batch were posted by someone else meanwhile; nothing was written."""


@dataclass(frozen=True)
class UsageBatch:
    entries: int = 0
    total: Decimal = ZERO
    team_ids: tuple[int, ...] = ()


def post_usage(*, select_sql: str, params: Sequence = (), created_at: datetime) -> UsageBatch:
    """Post every usage charge that `select_sql` yields (see USAGE_COLUMNS; amounts negative,
    kinds among LedgerEntry.USAGE_KINDS) and move the balances. Charges whose key is already in
    the ledger are skipped. Must run inside the caller's transaction, which should also hold
    whatever makes these keys its own (the metered rows' locks); if another writer slips a key
    in anyway, UsageConflict rolls the batch back rather than miscount a balance."""
    if not connection.in_atomic_block:
        raise RuntimeError("post_usage must run inside transaction.atomic()")
    with connection.cursor() as cursor:
        _stage(cursor, select_sql, params)
        team_ids = _lock_accounts(cursor)
        staged, total = _staged_totals(cursor)
        inserted = _insert_entries(cursor, created_at) if staged else 0
        if inserted != staged:
            raise UsageConflict(f"{staged - inserted} of {staged} charges were posted meanwhile")
        if staged:
            _move_balances(cursor)
        cursor.execute(f"DROP TABLE {STAGE}")
    return UsageBatch(entries=inserted, total=total, team_ids=tuple(team_ids))


def _stage(cursor, select_sql: str, params: Sequence) -> None:
    columns = ", ".join(USAGE_COLUMNS)
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {STAGE} AS SELECT {columns} FROM ({select_sql}) AS usage_rows",
        params,
    )
    # Already charged (a tick that ran before, a settlement at a status change): skip.
    cursor.execute(
        f"DELETE FROM {STAGE} WHERE idempotency_key IN "
        f"(SELECT idempotency_key FROM {LedgerEntry._meta.db_table})"
    )


def _lock_accounts(cursor) -> list[int]:
    """Create missing accounts, then lock every account the batch touches in id order (the
    order every multi-account writer uses, so two ticks cannot deadlock)."""
    cursor.execute(f"SELECT DISTINCT team_id FROM {STAGE}")
    team_ids = sorted(row[0] for row in cursor.fetchall())
    if not team_ids:
        return []
    existing = set(
        BillingAccount.objects.filter(team_id__in=team_ids).values_list("team_id", flat=True)
    )
    missing = [BillingAccount(team_id=team_id) for team_id in team_ids if team_id not in existing]
    BillingAccount.objects.bulk_create(missing, ignore_conflicts=True)
    list(
        BillingAccount.objects.select_for_update()
        .filter(team_id__in=team_ids)
        .order_by("id")
        .values_list("id", flat=True)
    )
    return team_ids


def _staged_totals(cursor) -> tuple[int, Decimal]:
    cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM {STAGE}")
    count, total = cursor.fetchone()
    # SQLite (the embedded demo) hands back a float; PostgreSQL a Decimal.
    return count, to_money(Decimal(str(total)))


def _public_id_sql() -> str:
    """Usage rows get sequential public ids ("u" + 13 hex digits of a counter): random ones
    would collide at hundreds of millions of rows."""
    table = LedgerEntry._meta.db_table
    if connection.vendor == "postgresql":
        return f"'u' || lpad(to_hex(nextval('{table}_usage_seq')), 13, '0')"
    return (
        f"'u' || printf('%%013x', (SELECT COALESCE(MAX(id), 0) FROM {table}) "
        "+ row_number() OVER (ORDER BY s.idempotency_key))"
    )


def _insert_entries(cursor, created_at: datetime) -> int:
    ledger = LedgerEntry._meta.db_table
    accounts = BillingAccount._meta.db_table
    cursor.execute(
        f"""
        INSERT INTO {ledger} (public_id, team_id, amount, balance_after, kind, idempotency_key,
                              source_type, source_id, description, created_at)
        SELECT {_public_id_sql()}, s.team_id, s.amount,
               a.balance + SUM(s.amount) OVER (
                   PARTITION BY s.team_id ORDER BY s.idempotency_key
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               s.kind, s.idempotency_key, s.source_type, s.source_id, s.description, %s
        FROM {STAGE} s JOIN {accounts} a ON a.team_id = s.team_id
        WHERE true
        ON CONFLICT (idempotency_key) DO NOTHING
        """,
        [created_at],
    )
    return cursor.rowcount


def _move_balances(cursor) -> None:
    accounts = BillingAccount._meta.db_table
    cursor.execute(
        f"""
        UPDATE {accounts} SET balance = {accounts}.balance + totals.total
        FROM (SELECT team_id, SUM(amount) AS total FROM {STAGE} GROUP BY team_id) AS totals
        WHERE {accounts}.team_id = totals.team_id
        """
    )


def run_balance_hooks_on_commit(team_ids: Sequence[int]) -> None:
    """Auto-recharge and low-balance alerts for the teams a batch debited, after commit, for
    only those whose balance crossed a threshold (a tick debits thousands of teams)."""
    from billing.services import _run_balance_hooks

    def run() -> None:
        due = BillingAccount.objects.filter(team_id__in=team_ids).filter(_below_a_threshold())
        for team_id in due.values_list("team_id", flat=True):
            _run_balance_hooks(team_id)

    transaction.on_commit(run)


def _below_a_threshold():
    from django.db.models import F, Q

    return Q(auto_recharge_enabled=True, balance__lt=F("auto_recharge_threshold")) | Q(
        low_balance_alert_threshold__isnull=False, balance__lt=F("low_balance_alert_threshold")
    )
