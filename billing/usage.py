"""Set-based usage charges: the bulk write path into the ledger, for metering ticks.

A per-minute tick for 100,000 running pods cannot call `post_entry` 200,000 times (about 140 s
on this project's machines, ENVIRONMENT.md); it writes every charge of a batch in a handful of
statements instead, with the same guarantees as `post_entry`: one row per idempotency key, the
balance moved in the same transaction under the account row locks, balance = sum(entries).

Funds floor: a catch-up (the minutes a metering outage left behind) must not cost a team more
than its funds. Given a floor per team (what low funds calls 10 minutes of runway), charges are
applied minute by minute in order; the first minute after which the balance is below the floor
is the last one charged for "cuttable" rows (what low funds stops: running pods). Their later
minutes are written off (UsageWriteOff, listed for staff), never charged. Rows that low funds
would not stop (stopped pods' volumes, network volumes) are charged in full. A batch holding one
minute per team never cuts: that minute is the one the balance falls below the floor in, which
is charged, as a tick running on time charges it before low funds stops the pods.

The floor is judged per batch: a team whose pods fall into several batches of a tick has the
charges of the earlier batches in its balance when a later one is cut, so each batch charges at
most one minute below the floor: the team's cuttable charges end at most one minute of their
burn below it (what is never cut, such as network volumes, is charged as on time).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction

from billing.models import BillingAccount, LedgerEntry, UsageWriteOff
from billing.money import ZERO, to_money
from teams import audit
from teams.models import Team

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
# And with a funds floor: the minute charged (a timestamp), whether low funds would stop what
# it charges, and what to call that resource in a write-off ("Pod trainer").
FLOOR_COLUMNS = ("minute", "cuttable", "resource")
STAGE = "billing_usage_stage"
FLOORS = "billing_usage_floors"
CUTOFFS = "billing_usage_cutoffs"


class UsageConflict(Exception):
    """Some charges of the batch were posted by someone else meanwhile; nothing was written."""


@dataclass(frozen=True)
class UsageBatch:
    entries: int = 0
    total: Decimal = ZERO
    team_ids: tuple[int, ...] = ()
    written_off_minutes: int = 0
    written_off: Decimal = ZERO


def post_usage(
    *,
    select_sql: str,
    params: Sequence | dict = (),
    created_at: datetime,
    floor_sql: str | None = None,
) -> UsageBatch:
    """Post every usage charge that `select_sql` yields (see USAGE_COLUMNS; amounts negative,
    kinds among LedgerEntry.USAGE_KINDS) and move the balances. Charges whose key is already in
    the ledger are skipped. Must run inside the caller's transaction, which should also hold
    whatever makes these keys its own (the metered rows' locks); if another writer slips a key
    in anyway, UsageConflict rolls the batch back rather than miscount a balance.

    With `floor_sql` (selecting team_id, floor for the team ids in %(floor_teams)s; `params` a
    dict), the rows also carry FLOOR_COLUMNS and charges past each team's floor are written off
    (see the module docstring)."""
    if not connection.in_atomic_block:
        raise RuntimeError("post_usage must run inside transaction.atomic()")
    cut = floor_sql is not None
    with connection.cursor() as cursor:
        _stage(cursor, select_sql, params, columns=USAGE_COLUMNS + (FLOOR_COLUMNS if cut else ()))
        team_ids = _lock_accounts(cursor)
        minutes, written_off = (
            _write_off_past_floor(cursor, floor_sql, params, created_at) if cut else (0, ZERO)
        )
        staged, total = _staged_totals(cursor)
        inserted = _insert_entries(cursor, created_at) if staged else 0
        if inserted != staged:
            raise UsageConflict(f"{staged - inserted} of {staged} charges were posted meanwhile")
        if staged:
            _move_balances(cursor)
        cursor.execute(f"DROP TABLE {STAGE}")
    return UsageBatch(inserted, total, tuple(team_ids), minutes, written_off)


def _stage(cursor, select_sql: str, params, *, columns: tuple[str, ...]) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {STAGE} AS SELECT {', '.join(columns)} "
        f"FROM ({select_sql}) AS usage_rows",
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


def _write_off_past_floor(
    cursor, floor_sql: str, params: dict, created_at: datetime
) -> tuple[int, Decimal]:
    """Find each team's last chargeable minute (the first one after which its balance, read
    under the account locks, is below its floor); move the cuttable rows after it out of the
    stage into write-offs. Returns the minutes and the amount written off."""
    teams = _teams_that_could_cut(cursor)
    if not teams:
        return 0, ZERO
    cursor.execute(f"DROP TABLE IF EXISTS {FLOORS}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {FLOORS} AS {floor_sql}", {**params, "floor_teams": teams}
    )
    _find_cutoffs(cursor)
    cursor.execute(_WRITE_OFF_SQL, [created_at])
    written = cursor.fetchall()
    cursor.execute(
        f"DELETE FROM {STAGE} s USING {CUTOFFS} c "
        "WHERE c.team_id = s.team_id AND s.cuttable AND s.minute > c.last_charged"
    )
    cursor.execute(f"DROP TABLE {FLOORS}, {CUTOFFS}")
    _audit_write_offs(written)
    return sum(row[1] for row in written), to_money(sum((row[2] for row in written), ZERO))


def _teams_that_could_cut(cursor) -> list[int]:
    """Only a team with cuttable rows after its first staged minute can have any cut (a tick
    on time stages one minute and skips the rest of this)."""
    cursor.execute(
        f"SELECT team_id FROM {STAGE} GROUP BY team_id "
        "HAVING MAX(minute) FILTER (WHERE cuttable) > MIN(minute)"
    )
    return [row[0] for row in cursor.fetchall()]


def _find_cutoffs(cursor) -> None:
    accounts = BillingAccount._meta.db_table
    cursor.execute(f"DROP TABLE IF EXISTS {CUTOFFS}")
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE {CUTOFFS} AS
        SELECT team_id, MIN(minute) AS last_charged FROM (
            SELECT m.team_id, m.minute, f.floor,
                   a.balance + SUM(m.amount) OVER (PARTITION BY m.team_id ORDER BY m.minute)
                       AS balance_after
            FROM (SELECT team_id, minute, SUM(amount) AS amount FROM {STAGE}
                  GROUP BY team_id, minute) AS m
            JOIN {FLOORS} f ON f.team_id = m.team_id
            JOIN {accounts} a ON a.team_id = m.team_id
        ) AS path
        WHERE balance_after < floor
        GROUP BY team_id
        """
    )


# One row per resource: its minutes after the team's last charged one, at what they would
# have cost. The key (resource and first minute) makes a repeated write-off impossible.
_WRITE_OFF_SQL = f"""
    INSERT INTO {UsageWriteOff._meta.db_table} (team_id, source_type, source_id, description,
        first_minute, last_minute, minutes, amount, idempotency_key, created_at)
    SELECT s.team_id, s.source_type, s.source_id, MIN(s.resource), MIN(s.minute),
           MAX(s.minute), COUNT(DISTINCT s.minute), -SUM(s.amount),
           s.source_type || ':' || s.source_id || ':write_off:'
               || to_char(MIN(s.minute) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI'),
           %s
    FROM {STAGE} s JOIN {CUTOFFS} c ON c.team_id = s.team_id
    WHERE s.cuttable AND s.minute > c.last_charged
    GROUP BY s.team_id, s.source_type, s.source_id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING team_id, minutes, amount, description
"""


def _audit_write_offs(written: list[tuple]) -> None:
    """One audit row per team and batch (a catch-up after a long outage is rare)."""
    by_team: dict[int, list[tuple]] = {}
    for row in written:
        by_team.setdefault(row[0], []).append(row)
    for team in Team.objects.filter(pk__in=by_team).order_by("pk"):
        rows = by_team[team.pk]
        audit.record(
            actor=None,
            team=team,
            action="billing.usage.written_off",
            resource_type="team",
            resource_id=team.slug,
            details={
                "minutes": sum(row[1] for row in rows),
                "amount": str(to_money(sum((row[2] for row in rows), ZERO))),
                "resources": sorted(row[3] for row in rows),
                "why": "metering caught up after an outage past the team's low-funds line",
            },
        )


def _staged_totals(cursor) -> tuple[int, Decimal]:
    cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM {STAGE}")
    count, total = cursor.fetchone()
    return count, to_money(total)


def _public_id_sql() -> str:
    """Usage rows get sequential public ids ("u" + 13 hex digits of a counter): random ones
    would collide at hundreds of millions of rows."""
    table = LedgerEntry._meta.db_table
    return f"'u' || lpad(to_hex(nextval('{table}_usage_seq')), 13, '0')"


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
