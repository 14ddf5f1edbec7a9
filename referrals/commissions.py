"""Commission processing: read new usage entries from the ledger, write what each one earned.

The ledger is read in order of entry id, from a stored cursor, in batches; each batch is one
transaction that holds the cursor row's lock, so runs (the beat task, `manage.py
process_commissions`, a second worker) queue behind each other and never read a range twice.
Every commission row also has a unique key derived from its usage entry
(`commission:<program kind>:<usage entry public id>`), so a usage entry earns at most once per
program kind whatever happens to the cursor.

Ids are handed out before commit, so a slow transaction can commit an id below one already
visible. A run therefore only reads up to the newest id it saw on an earlier run at least
REFERRAL_COMMIT_LAG_SECONDS ago: every id up to that one was allocated before then and has
committed (or rolled back) since. Commissions arrive a few minutes after the spend.

What earns (SPEC.md, referral programs):
- pods: the referred account's pod charges (usage_compute and usage_storage of source "pod":
  compute of GPU and CPU pods and their disks; network volumes are not pod spend);
- serverless: the referred account's usage_serverless charges;
- templates: pod charges of pods deployed from a template the earner created, by teams the
  creator is not a member of, once the template's pods have run the program's minimum runtime
  in total (counted in metered pod-minutes: a per-minute row counts one, a rolled-up row its
  `minutes`; the usage entries up to the one that reaches the minimum do not earn).

Usage rows are rolled up per resource and hour (billing.usage): a row earns its share of what
it covers, dated by the start of its period (an hour's row is posted when the hour has passed,
so the hour before a program ends still counts). Shares of hour rows are as exact as of minute
rows: 3 % of an hour at $5.00 is $0.15.
A referrer who is (or becomes) a member of the referred account earns nothing from it.

Rounding: each usage entry's commission is spend x rate rounded half up to the ledger's 10
places; sums are exact; pages round totals half up to the cent ($18.144 shows as $18.14).

Commissions are written set-based (a staging table filled by one INSERT ... SELECT per program,
then one INSERT into the commissions table): a tick of metering can post 200,000 usage entries a
minute, far more than a row-by-row loop keeps up with (ENVIRONMENT.md). They are credited to the
earner's chosen team (else their personal account) as one ledger entry of kind
referral_commission per team and batch, through billing.services.post_entry, so a referrer's
ledger gets a handful of entries, not two sub-cent credits per minute per referred pod; each
commission row points at the ledger entry that carried it. A refund (ledger kind refund, source_type
"ledger_entry", source_id the usage entry's public id) takes back the same share of its
commission from the team that received it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Subquery, Sum, Window
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import LedgerEntry
from billing.money import QUANTUM, ZERO
from billing.services import post_entry
from pods.models import Pod, PodTemplate
from referrals.models import (
    Commission,
    CommissionCursor,
    Program,
    ProgramKind,
    Referral,
    Referrer,
    TemplateUnlock,
)
from teams.models import Membership, Role, Team

CURSOR = "commissions"
BATCH_SIZE = 200_000
POD_KINDS = (LedgerEntry.Kind.USAGE_COMPUTE, LedgerEntry.Kind.USAGE_STORAGE)
BATCH = "referrals_usage_batch"
STAGE = "referrals_commission_stage"
PAYOUT = "referrals_payout_stage"
LEDGER = LedgerEntry._meta.db_table
COMMISSION = Commission._meta.db_table
COLUMNS = (
    "key",
    "kind",
    "program_id",
    "earner_id",
    "referral_id",
    "template_id",
    "template_name",
    "source_team_id",
    "usage_entry_id",
    "spend",
    "rate",
    "amount",
    "earned_at",
)


class CommissionConflict(Exception):
    """Someone else wrote some of this batch meanwhile (or the cursor was moved back by hand
    and a batch credit exists already); the batch rolls back and the next run retries."""


@dataclass
class ProcessResult:
    batches: int = 0
    commissions: int = 0
    reversals: int = 0
    total: Decimal = ZERO
    position: int = 0
    team_ids: set[int] = field(default_factory=set)


def commission_amount(spend: Decimal, rate: Decimal) -> Decimal:
    """What one usage entry earns; the SQL below computes the same (ROUND half up, 10 places)."""
    return (spend * rate).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def process(
    *, now: datetime | None = None, lag: timedelta | None = None, batch_size: int = BATCH_SIZE
) -> ProcessResult:
    """Process every ledger entry that is safe to read; returns what was written."""
    now = now or timezone.now()
    if lag is None:
        lag = timedelta(seconds=settings.REFERRAL_COMMIT_LAG_SECONDS)
    target = _target(now=now, lag=lag)
    result = ProcessResult()
    while True:
        with transaction.atomic():
            cursor = CommissionCursor.objects.select_for_update().get(name=CURSOR)
            if cursor.position >= target:
                result.position = cursor.position
                return result
            low, high = cursor.position, min(cursor.position + batch_size, target)
            _process_range(low, high, result)
            cursor.position = high
            cursor.save(update_fields=["position", "updated_at"])
        result.batches += 1


def _target(*, now: datetime, lag: timedelta) -> int:
    """The highest ledger id this run may read, and a fresh observation for the next run."""
    CommissionCursor.objects.get_or_create(name=CURSOR)
    with transaction.atomic():
        cursor = CommissionCursor.objects.select_for_update().get(name=CURSOR)
        newest = LedgerEntry.objects.aggregate(newest=Max("id"))["newest"] or 0
        if not lag:
            return newest
        target = cursor.position
        if cursor.seen_at is not None and now - cursor.seen_at >= lag:
            target = max(target, cursor.seen_id)
        if cursor.seen_at is None or now - cursor.seen_at >= lag:
            cursor.seen_id, cursor.seen_at = newest, now
            cursor.save(update_fields=["seen_id", "seen_at", "updated_at"])
        return target


def _process_range(low: int, high: int, result: ProcessResult) -> None:
    programs = list(Program.objects.order_by("starts_on"))
    if programs:
        result.team_ids.update(_write_commissions(low, high, programs, result))
    result.team_ids.update(_write_reversals(low, high, result))


def _write_reversals(low: int, high: int, result: ProcessResult) -> dict[int, int]:
    reversals = _not_yet_written(_reversals(low, high))
    totals: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for row in reversals:
        totals[row.team_id] += row.amount
    entries = _credit(totals, LedgerEntry.Kind.REFUND, f"{low}-{high}")
    for row in reversals:
        row.ledger_entry_id = entries[row.team_id]
    Commission.objects.bulk_create(reversals)
    result.reversals += len(reversals)
    result.total += sum((row.amount for row in reversals), ZERO)
    return entries


def _write_commissions(
    low: int, high: int, programs: list[Program], result: ProcessResult
) -> dict[int, int]:
    """Stage, credit and insert the batch's commissions; returns {team id: ledger entry id}."""
    with connection.cursor() as cursor:
        _read_batch(cursor, low, high)
        _unlock_templates(cursor, high, programs)
        _stage(cursor, programs)
        staged = _assign_payout_teams(cursor)
        credited = _credit(
            _staged_totals(cursor), LedgerEntry.Kind.REFERRAL_COMMISSION, f"{low}-{high}"
        )
        cursor.executemany(
            f"UPDATE {STAGE} SET ledger_entry_id = %s WHERE team_id = %s",  # noqa: S608
            [(entry_id, team_id) for team_id, entry_id in credited.items()],
        )
        inserted = _insert_commissions(cursor) if staged else 0
        if inserted != staged:
            raise CommissionConflict(f"{staged - inserted} of {staged} were written meanwhile")
        result.commissions += inserted
        result.total += _staged_sum(cursor)
        cursor.execute(f"DROP TABLE {STAGE}")
        cursor.execute(f"DROP TABLE {BATCH}")
    return credited


# Staging -------------------------------------------------------------------------------------


def _read_batch(cursor, low: int, high: int) -> None:
    """Copy the batch's usage entries into a temporary table and give the planner its real
    size: every join below then starts from known rows, whatever the statistics of the big
    tables say at the moment (stale statistics once turned a join into a quadratic plan)."""
    cursor.execute(f"DROP TABLE IF EXISTS {BATCH}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {BATCH} AS SELECT id, public_id, team_id, amount, kind, "  # noqa: S608
        "source_type, source_id, COALESCE(period_start, created_at) AS created_at "
        f"FROM {LEDGER} WHERE id > %s AND id <= %s "
        "AND kind IN ('usage_compute', 'usage_storage', 'usage_serverless')",
        [low, high],
    )
    cursor.execute(f"ANALYZE {BATCH}")


def _window(program: Program) -> tuple[str, list]:
    """SQL condition (and params) for usage charged while the program ran."""
    adapt = connection.ops.adapt_datetimefield_value
    if program.ends_at is None:
        return "e.created_at >= %s", [adapt(program.starts_at)]
    return "e.created_at >= %s AND e.created_at < %s", [
        adapt(program.starts_at),
        adapt(program.ends_at),
    ]


def _referral_part(program: Program) -> tuple[str, list]:
    """Usage of accounts created through a referral link, unless the referrer is a member."""
    if program.kind == ProgramKind.PODS:
        kinds = "e.kind IN ('usage_compute', 'usage_storage') AND e.source_type = 'pod'"
    else:
        kinds = "e.kind = 'usage_serverless'"
    window, window_params = _window(program)
    prefix = f"commission:{program.kind}:"
    sql = f"""
        SELECT %s || e.public_id AS key, %s AS kind, %s AS program_id,
               r.referrer_id AS earner_id, r.id AS referral_id,
               CAST(NULL AS BIGINT) AS template_id, '' AS template_name,
               e.team_id AS source_team_id, e.id AS usage_entry_id, -e.amount AS spend,
               %s AS rate, ROUND(-e.amount * %s, 10) AS amount, e.created_at AS earned_at
        FROM {BATCH} e JOIN {Referral._meta.db_table} r ON r.team_id = e.team_id
        WHERE {kinds} AND {window}
          AND NOT EXISTS (SELECT 1 FROM {Membership._meta.db_table} m
                          WHERE m.team_id = e.team_id AND m.user_id = r.referrer_id)
    """  # noqa: S608
    params = [prefix, program.kind, program.pk, program.rate, program.rate]
    return sql, [*params, *window_params]


def _template_part(program: Program) -> tuple[str, list]:
    """Pod charges of others' pods deployed from a creator's template, after it unlocked."""
    window, window_params = _window(program)
    prefix = f"commission:{program.kind}:"
    sql = f"""
        SELECT %s || e.public_id AS key, %s AS kind, %s AS program_id,
               t.created_by_id AS earner_id, CAST(NULL AS BIGINT) AS referral_id,
               t.id AS template_id, t.name AS template_name,
               e.team_id AS source_team_id, e.id AS usage_entry_id, -e.amount AS spend,
               %s AS rate, ROUND(-e.amount * %s, 10) AS amount, e.created_at AS earned_at
        FROM {BATCH} e
        JOIN {Pod._meta.db_table} p ON p.public_id = e.source_id
        JOIN {PodTemplate._meta.db_table} t ON t.id = p.template_id
        JOIN {TemplateUnlock._meta.db_table} u ON u.template_id = t.id AND u.program_id = %s
        WHERE e.source_type = 'pod' AND e.kind IN ('usage_compute', 'usage_storage')
          AND e.id > u.entry_id AND {window}
          AND t.created_by_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {Membership._meta.db_table} m
                          WHERE m.team_id = e.team_id AND m.user_id = t.created_by_id)
    """  # noqa: S608
    params = [prefix, program.kind, program.pk, program.rate, program.rate, program.pk]
    return sql, [*params, *window_params]


def _stage(cursor, programs: list[Program]) -> None:
    """A temporary table of every commission the batch earns and that is not written yet
    (amounts that round to zero are left out), with room for the team credited and the
    ledger entry that carries it."""
    parts = [
        _template_part(p) if p.kind == ProgramKind.TEMPLATES else _referral_part(p)
        for p in programs
    ]
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
    union = " UNION ALL ".join(sql for sql, _ in parts)
    params = [value for _, part_params in parts for value in part_params]
    columns = ", ".join(COLUMNS)
    cursor.execute(
        f"CREATE TEMPORARY TABLE {STAGE} AS SELECT {columns}, "  # noqa: S608
        "CAST(NULL AS BIGINT) AS team_id, CAST(NULL AS BIGINT) AS ledger_entry_id "
        f"FROM ({union}) AS earned WHERE amount <> 0",
        params,
    )
    cursor.execute(f"ANALYZE {STAGE}")
    # Written before: the cursor was moved back by hand (keys keep it to one per entry).
    cursor.execute(
        f"DELETE FROM {STAGE} WHERE EXISTS (SELECT 1 FROM {COMMISSION} c "  # noqa: S608
        f"WHERE c.key = {STAGE}.key)"
    )


def _assign_payout_teams(cursor) -> int:
    """Fill in each row's team (the earner's payout team); rows of earners who belong to no
    team are dropped. Returns how many rows remain."""
    cursor.execute(f"SELECT DISTINCT earner_id FROM {STAGE}")  # noqa: S608
    earners = [row[0] for row in cursor.fetchall()]
    if not earners:
        return 0
    Referrer.objects.bulk_create([Referrer(user_id=u) for u in earners], ignore_conflicts=True)
    payout = payout_team_ids(earners)
    cursor.execute(f"DROP TABLE IF EXISTS {PAYOUT}")
    cursor.execute(f"CREATE TEMPORARY TABLE {PAYOUT} (user_id BIGINT, team_id BIGINT)")
    cursor.executemany(
        f"INSERT INTO {PAYOUT} VALUES (%s, %s)",  # noqa: S608
        [(user_id, team_id) for user_id, team_id in payout.items() if team_id],
    )
    cursor.execute(
        f"UPDATE {STAGE} SET team_id = (SELECT p.team_id FROM {PAYOUT} p "  # noqa: S608
        f"WHERE p.user_id = {STAGE}.earner_id)"
    )
    cursor.execute(f"DELETE FROM {STAGE} WHERE team_id IS NULL")  # noqa: S608
    cursor.execute(f"DROP TABLE {PAYOUT}")
    cursor.execute(f"SELECT COUNT(*) FROM {STAGE}")  # noqa: S608
    return cursor.fetchone()[0]


def _staged_totals(cursor) -> dict[int, Decimal]:
    cursor.execute(f"SELECT team_id, SUM(amount) FROM {STAGE} GROUP BY team_id")  # noqa: S608
    # SQLite (the embedded demo) hands back floats; PostgreSQL exact Decimals.
    return {team_id: Decimal(str(total)) for team_id, total in cursor.fetchall()}


def _staged_sum(cursor) -> Decimal:
    cursor.execute(f"SELECT COALESCE(SUM(amount), 0) FROM {STAGE}")  # noqa: S608
    return Decimal(str(cursor.fetchone()[0]))


def _insert_commissions(cursor) -> int:
    columns = ", ".join(COLUMNS)
    cursor.execute(
        f"INSERT INTO {COMMISSION} ({columns}, team_id, ledger_entry_id, created_at) "  # noqa: S608
        f"SELECT {columns}, team_id, ledger_entry_id, %s FROM {STAGE} WHERE true "
        "ON CONFLICT (key) DO NOTHING",
        [connection.ops.adapt_datetimefield_value(timezone.now())],
    )
    return cursor.rowcount


# Templates -----------------------------------------------------------------------------------


def _unlock_templates(cursor, high: int, programs: list[Program]) -> None:
    """Record the templates that reach a program's minimum runtime within the batch."""
    for program in programs:
        if program.kind != ProgramKind.TEMPLATES:
            continue
        cursor.execute(
            f"""
            SELECT DISTINCT p.template_id FROM {BATCH} e
            JOIN {Pod._meta.db_table} p ON p.public_id = e.source_id
            JOIN {PodTemplate._meta.db_table} t ON t.id = p.template_id
            WHERE e.source_type = 'pod' AND e.kind = 'usage_compute'
              AND t.created_by_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {TemplateUnlock._meta.db_table} u
                              WHERE u.template_id = t.id AND u.program_id = %s)
            """,  # noqa: S608
            [program.pk],
        )
        for (template_id,) in cursor.fetchall():
            unlocked_after(program, template_id, high)


def template_runtime_entries(template_id: int):
    """The template's runtime entries: usage_compute of its pods (all teams), each worth its
    `minutes` (one for a per-minute row from before the roll-up)."""
    pods = Pod.objects.filter(template_id=template_id).values("public_id")
    return LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.USAGE_COMPUTE, source_type="pod", source_id__in=Subquery(pods)
    )


def template_runtime_minutes(template_id: int) -> int:
    minutes = Coalesce("minutes", 1)
    return template_runtime_entries(template_id).aggregate(total=Sum(minutes))["total"] or 0


def unlocked_after(program: Program, template_id: int, high: int) -> int | None:
    """The ledger id after which the template's usage earns, or None while it has run less
    than the program's minimum (counted over entries up to `high`, all committed)."""
    unlock = TemplateUnlock.objects.filter(program=program, template_id=template_id).first()
    if unlock:
        return unlock.entry_id
    needed = program.min_runtime_minutes
    if needed <= 0:
        return 0
    reached = _entry_reaching(template_id, high, needed)
    if reached is None:
        return None
    entry_id, at = reached
    TemplateUnlock.objects.create(
        program=program, template_id=template_id, entry_id=entry_id, unlocked_at=at
    )
    return entry_id


def _entry_reaching(template_id: int, high: int, needed: int) -> tuple[int, datetime] | None:
    """The first runtime entry (id order, up to `high`) at which the template's pods have run
    `needed` minutes in total, with the start of what it covers."""
    entries = template_runtime_entries(template_id).filter(id__lte=high)
    running = Window(Sum(Coalesce("minutes", 1)), order_by=F("id").asc())
    walk = entries.annotate(total=running, at=Coalesce("period_start", "created_at"))
    return walk.filter(total__gte=needed).order_by("id").values_list("id", "at").first()


def _reversals(low: int, high: int) -> list[Commission]:
    """Refunds of usage entries that earned a commission take back the same share of it."""
    refunds = list(
        LedgerEntry.objects.filter(
            id__gt=low,
            id__lte=high,
            kind=LedgerEntry.Kind.REFUND,
            source_type="ledger_entry",
            amount__gt=0,
        ).values_list("id", "public_id", "amount", "created_at", "source_id")
    )
    if not refunds:
        return []
    originals = defaultdict(list)
    for commission in Commission.objects.filter(
        usage_entry__public_id__in={row[4] for row in refunds}, refund_entry=None
    ).select_related("usage_entry"):
        originals[commission.usage_entry.public_id].append(commission)
    taken = _already_reversed(originals)
    found = []
    for refund_id, refund_public_id, refunded, at, usage_public_id in refunds:
        for original in originals.get(usage_public_id, []):
            reversal = _reversal(original, refund_id, refund_public_id, refunded, at, taken)
            if reversal:
                found.append(reversal)
    return found


def _already_reversed(originals: dict[str, list[Commission]]) -> dict[int, Decimal]:
    """How much of each commission earlier refunds took back already (as a positive sum)."""
    commissions = [c for group in originals.values() for c in group]
    rows = (
        Commission.objects.filter(refund_entry__isnull=False)
        .filter(usage_entry_id__in={c.usage_entry_id for c in commissions})
        .values("usage_entry_id", "kind")
        .annotate(total=Sum("amount"))
    )
    taken = {(row["usage_entry_id"], row["kind"]): -row["total"] for row in rows}
    return {c.pk: taken.get((c.usage_entry_id, c.kind), ZERO) for c in commissions}


def _reversal(original, refund_id, refund_public_id, refunded, at, taken) -> Commission | None:
    share = min(refunded, original.spend)
    amount = -(original.amount * share / original.spend).quantize(QUANTUM, rounding=ROUND_HALF_UP)
    # Several partial refunds never take back more than the commission was.
    amount = max(amount, -(original.amount - taken[original.pk]))
    if not amount:
        return None
    taken[original.pk] += -amount
    return Commission(
        key=f"reversal:{original.kind}:{refund_public_id}",
        kind=original.kind,
        program_id=original.program_id,
        earner_id=original.earner_id,
        referral_id=original.referral_id,
        template_id=original.template_id,
        template_name=original.template_name,
        source_team_id=original.source_team_id,
        usage_entry_id=original.usage_entry_id,
        refund_entry_id=refund_id,
        spend=-share,
        rate=original.rate,
        amount=amount,
        team_id=original.team_id,
        earned_at=at,
    )


def _not_yet_written(rows: list[Commission]) -> list[Commission]:
    keys = [row.key for row in rows]
    done = set()
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        done.update(Commission.objects.filter(key__in=chunk).values_list("key", flat=True))
    return [row for row in rows if row.key not in done]


def _credit(totals: dict[int, Decimal], kind: str, batch: str) -> dict[int, int]:
    """One ledger entry per team for the batch (teams in id order, the order every
    multi-account writer locks accounts in). Returns {team id: ledger entry id}."""
    teams = Team.objects.in_bulk([team_id for team_id, total in totals.items() if total])
    credit = kind == LedgerEntry.Kind.REFERRAL_COMMISSION
    entries = {}
    for team_id in sorted(teams):
        entry = post_entry(
            team=teams[team_id],
            amount=totals[team_id],
            kind=kind,
            idempotency_key=f"{'referral_commission' if credit else 'referral_reversal'}:"
            f"{batch}:{team_id}",
            description="Referral and template commissions"
            if credit
            else "Referral commissions taken back (refunded usage)",
            source_type="referrals",
            source_id=batch,
        )
        if entry is None:
            raise CommissionConflict(f"Batch {batch} was already credited to team {team_id}.")
        entries[team_id] = entry.pk
    return entries


def payout_team_ids(user_ids) -> dict[int, int | None]:
    """Where each earner's commissions go: the team they chose if they still belong to it,
    else their personal account, else the oldest team they administer, else any team."""
    chosen = dict(
        Referrer.objects.filter(user_id__in=user_ids).values_list("user_id", "payout_team_id")
    )
    memberships = defaultdict(list)
    rows = Membership.objects.filter(user_id__in=user_ids).order_by("team__created_at", "team_id")
    for user_id, team_id, personal, role in rows.values_list(
        "user_id", "team_id", "team__is_personal", "role"
    ):
        memberships[user_id].append((team_id, personal, role))
    result = {}
    for user_id in user_ids:
        teams = memberships.get(user_id, [])
        ranked = (
            [t for t, _, _ in teams if t == chosen.get(user_id)]
            + [t for t, personal, _ in teams if personal]
            + [t for t, _, role in teams if role == Role.ADMIN]
            + [t for t, _, _ in teams]
        )
        result[user_id] = ranked[0] if ranked else None
    return result
