"""Metering of pods and network volumes: balances move every minute, the ledger per hour.

What is charged: every whole minute a pod spends in a billable state, compute (GPU price x
count at its cloud and pricing, its spot bid, or the CPU instance price) and storage (pod
volume $0.10/GB-month while running and $0.20 while stopped, container disk while running),
network volumes $0.07/GB-month under 1 TB and $0.05 from 1 TB, a month being 30 days; nothing
while the pod's machine is offline. Minute amounts are telescoping shares (pods.meter_sql), so
60 minutes of $0.79/h cost exactly $0.79 and a 30-day month of a 20 GB stopped volume $4.00.

How (the design is billing.usage's): each resource has an open **segment**, from its
`metered_until` on, opened (by the first tick that sees it) with the rates of its state then.
The team's watermark (BillingAccount.usage_metered_until) says up to which minute the team's
segments are in its balance. A tick claims batches of teams (SKIP LOCKED on their accounts)
and, per batch, in one transaction, scans the batch's pods once into groups (meter_sql.
groups_sql: a few rows a team, by everything a segment and its current rates depend on), and
from the groups:

1. reopens segments whose rates changed (not opened yet, machine offline or back, a price
   change; a probe of the groups, so most ticks skip it): the part up to the watermark is
   posted, a new segment starts there;
2. in a catch-up (more than a minute to charge), cuts teams at their low-funds line
   (billing.usage: their running pods' minutes past it are written off, not charged);
3. charges every segment from the watermark to the tick's minute in one aggregate per team
   and moves the watermark: the only per-minute writes, one account row per team;
4. when an hour has passed and the team's close_delay (team id mod 60 minutes) too, posts
   each resource's hour (one row per kind) and starts its segment at the new hour: each tick
   posts the hours of about 1/60 of the teams, whose pods it reads by index.

Two ticks at once split the teams between them; a tick killed halfway loses its transaction
and the next one charges the same minutes; a minute is charged once because the watermark
moves with the charge. Rows are locked with SKIP LOCKED: a pod held by a status change is
reopened or closed by that change (or by a later tick), never waited for.

A status change (`change_status`) first settles the resource: the minutes before it at the
old status, as far as the team's funds reach (the catch-up rule), posted at once, then skips
the partial minute it happens in, so a minute is charged only when the whole of it was spent
in one state. A pod that is stopping pays compute only until STOP_BILLED_FOR after the stop
began (SIGKILL comes STOP_GRACE after SIGTERM); a stop that never completes is the
platform's fault, so from then on the pod pays what a stopped pod pays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing import usage
from billing.money import ZERO
from pods import pricing
from pods.meter_sql import (
    COMPUTE_RATE_SQL,
    GROUPS,
    GROUPS_V,
    NETWORK_VOLUME_MONTH_SQL,
    PODS,
    TEAMS,
    VOLUME_GB_SQL,
    VOLUMES,
    amounts_sql,
    any_stale_sql,
    charges_sql,
    group_segments_sql,
    groups_sql,
    pieces_sql,
    pod_tables_sql,
    rows_sql,
    segments_sql,
    stale_pods_sql,
    stale_volumes_sql,
    volume_groups_sql,
)
from pods.models import NetworkVolume, Pod

MINUTE = timedelta(minutes=1)
# Teams per batch (each batch is one transaction holding their account rows). Each batch
# scans the pods table once per step (a hash join with its teams), so fewer, larger batches
# are cheaper: 50,000 teams hold 500,000 pods at ten a team.
BATCH_SIZE = 50_000
# Low funds: a team whose balance covers less than this many minutes of its burn rate has its
# pods stopped (pods.funds), and a catch-up charges its running pods no further.
RUNWAY_MINUTES = 10
# A stop sends SIGTERM, then SIGKILL this much later (pods.lifecycle.halt_pod).
STOP_GRACE = timedelta(seconds=5)
# How long a stopping pod pays compute: the SIGKILL deadline plus the halt's own work.
STOP_BILLED_FOR = STOP_GRACE + timedelta(seconds=10)
# Hour rows are posted spread over the next hour (close_delay): minutes of delay, per team.
CLOSE_SPREAD = 60
STALE = "pods_meter_stale"
# A batch's transaction: no JIT (_no_jit), and memory for its aggregates: the groups took
# 2.2 MB at 10,000 teams, so ~11 MB at 50,000, past the default work_mem (4 MB, twice that
# for hashes), where PostgreSQL spills them to disk. bench/metering.py's bare SQL runs so too.
BATCH_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")
CUT = "pods_meter_cut"
# What higher apps meter on the same tick (serverless workers, per second): hook(until=) ->
# Step, called after the pods, registered from their AppConfig.ready() (pods cannot import
# them). One beat entry, one instant for everything a team runs.
TICK_HOOKS: list[Callable[..., Step]] = []
# SQL of (team_id, per_hour) for what teams run outside pods.metering and low funds stops with
# their pods (serverless workers): a function of team_burn_sql's scope, registered likewise.
BURN_SQL: list[Callable[[str], str]] = []


@dataclass(frozen=True)
class Scope:
    """Which segments of the batch's teams a step covers: SQL conditions on pods `p` and
    network volumes `v`, with their parameters."""

    pods: str = "true"
    volumes: str = "true"
    params: dict = field(default_factory=dict)


EVERYTHING = Scope()


def meter_state(status: str) -> str:
    """What a status is billed as: "running", "stopping" (compute for STOP_BILLED_FOR, then as
    stopped), "stopped" (the volume only) or "none"."""
    if status in (Pod.Status.RUNNING, Pod.Status.STOPPING):
        return status
    return "none" if status == Pod.Status.TERMINATED else "stopped"


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    floor = floor_minute(moment)
    return floor if floor == moment else floor + MINUTE


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass
class TickResult:
    until: datetime
    teams: int = 0
    pods: int = 0
    volumes: int = 0
    entries: int = 0
    total: Decimal = ZERO
    written_off_minutes: int = 0
    written_off: Decimal = ZERO
    team_ids: set[int] = field(default_factory=set)

    def add(self, step: Step) -> None:
        self.entries += step.entries
        self.total += step.total
        self.written_off_minutes += step.written_off_minutes
        self.written_off += step.written_off
        self.team_ids.update(step.charged_teams)
        self.pods += step.pods
        self.volumes += step.volumes


@dataclass
class Step:
    """What one batch (or one settlement) wrote."""

    entries: int = 0
    total: Decimal = ZERO
    written_off_minutes: int = 0
    written_off: Decimal = ZERO
    charged_teams: set[int] = field(default_factory=set)
    # Of those, the teams whose balance hooks may be due (billing.usage.UsageBatch).
    hook_teams: set[int] = field(default_factory=set)
    # Resources a tick's batch metered (from its groups).
    pods: int = 0
    volumes: int = 0

    def posted(self, batch: usage.UsageBatch) -> None:
        self.entries += batch.entries
        self.total += batch.total
        if batch.total:
            self.charged_teams.update(batch.team_ids)
            self.hook_teams.update(batch.hooks_due())


def price_params() -> dict:
    return {
        "volume_running": pricing.VOLUME_RUNNING_PER_GB_MONTH,
        "volume_stopped": pricing.VOLUME_STOPPED_PER_GB_MONTH,
        "container_disk": pricing.container_disk_per_gb_month(),
        "large_from": pricing.NETWORK_VOLUME_LARGE_FROM_GB,
        "large_rate": pricing.NETWORK_VOLUME_LARGE_PER_GB_MONTH,
        "rate": pricing.NETWORK_VOLUME_PER_GB_MONTH,
        "stop_billed_for": STOP_BILLED_FOR,
    }


# Status changes ----------------------------------------------------------------------------


def change_status(pod: Pod, status: str, reason: str = "", *, at: datetime | None = None) -> None:
    """The one way a pod's status changes. The caller holds the pod's row lock (or owns a new
    pod) and saves it. Minutes before the change are charged at the old status first."""
    at = at or timezone.now()
    if pod.pk:
        # The tick may have moved the segment on since the caller loaded the pod.
        _reload_segment(pod)
    if pod.metered_until and meter_state(pod.status) != meter_state(status):
        settle_pod(pod, at=at)
        pod.metered_until = max(pod.metered_until, ceil_minute(at))
    elif pod.metered_until is None:
        pod.metered_until = ceil_minute(at)
    pod.status = status
    pod.status_reason = reason
    pod.status_changed_at = at


SEGMENT_FIELDS = (
    "metered_until",
    "meter_compute",
    "meter_storage_running",
    "meter_storage_stopped",
    "meter_running_until",
)


def _reload_segment(pod: Pod) -> None:
    values = Pod.objects.values_list(*SEGMENT_FIELDS).get(pk=pod.pk)
    for name, value in zip(SEGMENT_FIELDS, values, strict=True):
        setattr(pod, name, value)


def settle_pod(pod: Pod, *, at: datetime) -> None:
    """Charge and post the pod's segment up to `at` at its current (old) status, as far as its
    team's funds reach (the catch-up rule); the next tick opens a new segment."""
    end = _settle(Pod, pod, at=at)
    pod.metered_until = end
    for name in SEGMENT_FIELDS[1:]:
        setattr(pod, name, None)


def settle_network_volume(volume: NetworkVolume, *, at: datetime) -> None:
    """Charge and post a network volume up to `at` (before it is deleted or resized)."""
    if volume.metered_until is None:
        return
    volume.metered_until = _settle(NetworkVolume, volume, at=at)
    volume.meter_storage = None


def _settle(model, resource, *, at: datetime) -> datetime:
    until = floor_minute(at)
    if model is Pod:
        scope = Scope(pods="p.id = %(id)s", volumes="false", params={"id": resource.pk})
        closed = {name: None for name in SEGMENT_FIELDS[1:]}
    else:
        scope = Scope(pods="false", volumes="v.id = %(id)s", params={"id": resource.pk})
        closed = {"meter_storage": None}
    with transaction.atomic():
        usage.ensure_accounts([resource.team_id])
        usage.lock_accounts([resource.team_id])
        _create_teams([resource.team_id])
        step = Step()
        _reopen_stale(step, scope)
        _cut_at_floor(step, scope, until=until)
        _charge(step, scope, until=until)
        _post_segments(step, scope, until=until)
        end = model.objects.values_list("metered_until", flat=True).get(pk=resource.pk)
        model.objects.filter(pk=resource.pk).update(**closed)
        _drop_teams()
    usage.run_balance_hooks_on_commit(sorted(step.hook_teams))
    return end


# The tick ----------------------------------------------------------------------------------


def meter(*, until: datetime | None = None, batch_size: int = BATCH_SIZE) -> TickResult:
    """Charge every pod and network volume up to the start of the current minute (or `until`)."""
    until = floor_minute(until or timezone.now())
    result = TickResult(until=until)
    _start_metering_new_rows()
    _create_missing_accounts()
    after = 0
    while True:
        with transaction.atomic():
            claimed = usage.claim_accounts(until=until, after=after, size=batch_size)
            if not claimed:
                break
            team_ids = sorted(team_id for _, team_id in claimed)
            step = _meter_batch(team_ids, until=until)
            usage.run_balance_hooks_on_commit(sorted(step.hook_teams))
        result.add(step)
        result.teams += len(team_ids)
        after = claimed[-1][0]
    for hook in TICK_HOOKS:
        result.add(hook(until=until))
    return result


def _meter_batch(team_ids: list[int], *, until: datetime) -> Step:
    """One scan of the batch's pods (the groups); the steps that change segments (rare: a
    rate changed, a catch-up cut a team) scan again and the groups are made anew."""
    step = Step()
    _create_teams(team_ids)
    _create_groups()
    if _any_stale():
        _reopen_stale(step, EVERYTHING)
        _create_groups()
    if _cut_at_floor(step, EVERYTHING, until=until):
        _create_groups()
    _charge_batch(step, until=until)
    _close_hours(step, until=until)
    _count_groups(step)
    _drop_teams()
    return step


def _count_groups(step: Step) -> None:
    """How many pods and network volumes the batch metered, for the command's report (a
    COUNT of the pods table took 0.01-0.07 s a tick at 100,000 pods, ten times that at 1M)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COALESCE(SUM(n), 0) FROM {GROUPS}), "
            f"(SELECT COALESCE(SUM(n), 0) FROM {GROUPS_V})"
        )
        step.pods, step.volumes = (int(count) for count in cursor.fetchone())


def _start_metering_new_rows() -> None:
    """Rows that were never metered start at the first whole minute of their life (not
    serverless workers' pods: serverless bills those per second)."""
    for model in (Pod, NetworkVolume):
        rows = model.objects.filter(metered_until=None)
        if model is Pod:
            rows = rows.exclude(kind=Pod.Kind.WORKER)
        for pk, created_at in rows.values_list("pk", "created_at"):
            model.objects.filter(pk=pk, metered_until=None).update(
                metered_until=ceil_minute(created_at)
            )


def _create_missing_accounts() -> None:
    """Every team with something to meter has an account (its watermark and balance)."""
    pods = Pod.objects.exclude(status=Pod.Status.TERMINATED).filter(
        team__billing_account__isnull=True
    )
    volumes = NetworkVolume.objects.filter(team__billing_account__isnull=True)
    team_ids = set(pods.values_list("team_id", flat=True)) | set(
        volumes.values_list("team_id", flat=True)
    )
    if team_ids:
        usage.ensure_accounts(sorted(team_ids))


def _create_teams(team_ids: list[int]) -> None:
    """The batch's teams and their watermarks, read under the account locks."""
    with connection.cursor() as cursor:
        for setting in BATCH_SETTINGS:
            cursor.execute(setting)
        cursor.execute(f"DROP TABLE IF EXISTS {TEAMS}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {TEAMS} AS SELECT team_id, usage_metered_until AS w "
            f"FROM {usage.ACCOUNTS} WHERE team_id = ANY(%s)",
            [team_ids],
        )
        cursor.execute(f"ANALYZE {TEAMS}")


def _no_jit(cursor) -> None:
    """The planner takes each generate_series for 1,000 rows (a piece is one or a few), so
    it JIT-compiles these queries: 2.7 s of compiling for 0.3 s of work at 10,000 pods."""
    cursor.execute("SET LOCAL jit = off")


def _drop_teams() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TEAMS}, {GROUPS}, {GROUPS_V}")


def _create_groups() -> None:
    """The batch's segments grouped (meter_sql.groups_sql), read under the account locks: a
    settlement, the only other writer of these segments, takes its team's lock first."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {GROUPS}, {GROUPS_V}")
        cursor.execute(f"CREATE TEMPORARY TABLE {GROUPS} AS {groups_sql()}")
        cursor.execute(f"CREATE TEMPORARY TABLE {GROUPS_V} AS {volume_groups_sql()}")


def _any_stale() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(any_stale_sql(), price_params())
        return cursor.fetchone()[0]


# 1. Reopening segments whose rates changed ------------------------------------------------


def _reopen_stale(step: Step, scope: Scope) -> None:
    """Post each stale segment up to the watermark (at the rates it had) and reopen it there
    at the current rates."""
    params = {**price_params(), **scope.params}
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STALE}, {STALE}_v")
        cursor.execute(f"CREATE TEMPORARY TABLE {STALE} AS {stale_pods_sql(scope.pods)}", params)
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STALE}_v AS {stale_volumes_sql(scope.volumes)}", params
        )
        _skip_locked(cursor, STALE, PODS)
        _skip_locked(cursor, f"{STALE}_v", VOLUMES)
        if not _any_rows(cursor, STALE, f"{STALE}_v"):
            cursor.execute(f"DROP TABLE {STALE}, {STALE}_v")
            return
    segments = segments_sql(
        pods=f"p.id IN (SELECT id FROM {STALE})", volumes=f"v.id IN (SELECT id FROM {STALE}_v)"
    )
    pieces = pieces_sql(segments, "x.seg", "GREATEST(x.seg, x.w)")
    step.posted(
        usage.apply_usage(
            rows_sql=rows_sql(amounts_sql(pieces)), params={}, created_at=timezone.now()
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(_REOPEN_PODS)
        cursor.execute(_REOPEN_VOLUMES)
        cursor.execute(f"DROP TABLE {STALE}, {STALE}_v")


def _any_rows(cursor, *tables: str) -> bool:
    """Whether a step has anything to do (most ticks reopen and close nothing)."""
    union = " UNION ALL ".join(f"SELECT 1 FROM {table}" for table in tables)
    cursor.execute(f"SELECT EXISTS ({union})")
    return cursor.fetchone()[0]


def _skip_locked(cursor, stage: str, table: str) -> None:
    """Keep only the staged rows this transaction could lock (others are being settled)."""
    cursor.execute(
        f"DELETE FROM {stage} WHERE id NOT IN (SELECT r.id FROM {table} r "
        f"WHERE r.id IN (SELECT id FROM {stage}) FOR UPDATE SKIP LOCKED)"
    )


_REOPEN_PODS = f"""
    UPDATE {PODS} p SET meter_compute = s.cur_c, meter_storage_running = s.cur_sr,
        meter_storage_stopped = s.cur_ss, meter_running_until = s.cur_e,
        metered_until = GREATEST(p.metered_until, t.w)
    FROM {STALE} s, {TEAMS} t WHERE p.id = s.id AND t.team_id = p.team_id
"""
_REOPEN_VOLUMES = f"""
    UPDATE {VOLUMES} v SET meter_storage = s.cur_sr, metered_until = GREATEST(v.metered_until, t.w)
    FROM {STALE}_v s, {TEAMS} t WHERE v.id = s.id AND t.team_id = v.team_id
"""


# 2. The funds floor of a catch-up ---------------------------------------------------------

_FLOOR_TEAMS = "{team_id} = ANY(%(floor_teams)s)"


def _cut_at_floor(step: Step, scope: Scope, *, until: datetime) -> bool:
    """Cut the teams whose catch-up crosses their low-funds line (billing.usage): their running
    pods are charged and posted up to the minute after which the balance is below the line,
    the rest of their minutes up to `until` is written off, and their segments go on from
    `until`. Whether any team could be cut."""
    teams = _teams_that_could_cut(scope, until)
    if not teams:
        return False
    params = {**price_params(), **scope.params, "until": until, "floor_teams": teams}
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {CUT}")
        cursor.execute(f"CREATE TEMPORARY TABLE {CUT} AS {_cut_points_sql(scope)}", params)
        _skip_locked(cursor, CUT, PODS)
    cut = segments_sql(pods=f"p.id IN (SELECT id FROM {CUT})", volumes="false")
    point = f"(SELECT k FROM {CUT} WHERE {CUT}.id = x.id)"
    charged = pieces_sql(cut, "GREATEST(x.seg, x.w)", point)
    posted = pieces_sql(cut, "x.seg", point)
    step.posted(
        usage.apply_usage(
            charges_sql=charges_sql(amounts_sql(charged)),
            rows_sql=rows_sql(amounts_sql(posted)),
            params=params,
            created_at=timezone.now(),
        )
    )
    minutes, amount = usage.write_off(
        select_sql=_write_offs_sql(pieces_sql(cut, point, "%(until)s")),
        params=params,
        created_at=timezone.now(),
    )
    step.written_off_minutes += minutes
    step.written_off += amount
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {PODS} SET metered_until = %s WHERE id IN (SELECT id FROM {CUT})", [until]
        )
        cursor.execute(f"DROP TABLE {CUT}")
    return True


def _teams_that_could_cut(scope: Scope, until: datetime) -> list[int]:
    """Only a team with a running pod that has more than a minute to charge can be cut (a
    tick on time skips the rest of this, and the scan when no team lags)."""
    segments = segments_sql(pods=scope.pods, volumes="false")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {TEAMS} WHERE w IS NULL OR w < %s)", [until - MINUTE]
        )
        if not cursor.fetchone()[0]:
            return []
        cursor.execute(
            f"SELECT DISTINCT x.team_id FROM ({segments}) AS x WHERE x.cuttable "
            "AND x.c + x.sr > 0 AND %(until)s - GREATEST(x.seg, x.w) > interval '1 minute'",
            {**scope.params, "until": until},
        )
        return sorted(row[0] for row in cursor.fetchall())


def _cut_points_sql(scope: Scope) -> str:
    """(id, team_id, k) for each running pod of a team whose balance, charged minute by minute
    in order (everything of the team in the batch), first falls below its floor at minute
    `last`: its minutes from k = last + 1 minute on are not charged."""
    teams = "p.team_id = ANY(%(floor_teams)s)"
    volumes = "v.team_id = ANY(%(floor_teams)s)"
    segments = segments_sql(
        pods=f"{scope.pods} AND {teams}", volumes=f"{scope.volumes} AND {volumes}"
    )
    minutes = pieces_sql(segments, "GREATEST(x.seg, x.w)", "%(until)s", step="minute")
    floors = (
        f"SELECT team_id, {funds_floor_sql('per_hour')} AS floor "
        f"FROM ({team_burn_sql(_FLOOR_TEAMS)}) AS burn"
    )
    return f"""
        WITH path AS (
            SELECT a.team_id, a.pa AS minute, SUM(a.compute + a.storage) AS cost
            FROM ({amounts_sql(minutes)}) AS a GROUP BY a.team_id, a.pa
        ), cutoffs AS (
            SELECT team_id, MIN(minute) + interval '1 minute' AS k FROM (
                SELECT path.team_id, path.minute, f.floor,
                       acc.balance - SUM(path.cost) OVER (
                           PARTITION BY path.team_id ORDER BY path.minute) AS balance_after
                FROM path JOIN ({floors}) AS f ON f.team_id = path.team_id
                JOIN {usage.ACCOUNTS} acc ON acc.team_id = path.team_id
            ) AS walk
            WHERE balance_after < floor GROUP BY team_id
        )
        SELECT x.id, x.team_id, GREATEST(c.k, GREATEST(x.seg, x.w)) AS k
        FROM ({segments}) AS x JOIN cutoffs c ON c.team_id = x.team_id
        WHERE x.source_type = 'pod' AND x.cuttable AND c.k < %(until)s
    """


def _write_offs_sql(pieces: str) -> str:
    """One write-off per cut pod (billing.usage.WRITE_OFF_COLUMNS)."""
    return f"""
        SELECT a.team_id, a.source_type, a.source_id, MIN('Pod ' || a.name) AS description,
               MIN(a.pa) AS first_minute, MAX(a.pb) - interval '1 minute' AS last_minute,
               SUM(a.storage_minutes) AS minutes, SUM(a.compute + a.storage) AS amount
        FROM ({amounts_sql(pieces)}) AS a
        GROUP BY a.team_id, a.source_type, a.source_id HAVING SUM(a.compute + a.storage) > 0
    """


# 3. The charge, and 4. closing hours -------------------------------------------------------


def _charge(step: Step, scope: Scope, *, until: datetime) -> None:
    """A settlement's charge: every segment in scope from the watermark up to `until`."""
    segments = segments_sql(pods=scope.pods, volumes=scope.volumes)
    alike = (
        f"SELECT team_id, seg, c, sr, ss, e, w, COUNT(*) AS n FROM ({segments}) AS s "
        "GROUP BY team_id, seg, c, sr, ss, e, w"
    )
    params = {**scope.params, "until": until}
    step.posted(
        usage.apply_usage(
            charges_sql=_alike_charges_sql(alike), params=params, created_at=timezone.now()
        )
    )


def _charge_batch(step: Step, *, until: datetime) -> None:
    """A tick's charge: every segment of the batch from the watermark up to `until`, from the
    groups, and the batch's watermarks moved to `until` in the same UPDATE of the accounts."""
    alike = (
        f"SELECT team_id, seg, c, sr, ss, e, w, SUM(n) AS n FROM ({group_segments_sql()}) AS s "
        "GROUP BY team_id, seg, c, sr, ss, e, w"
    )
    charged = _alike_charges_sql(alike)
    step.posted(
        usage.charge_minutes(teams=TEAMS, until=until, charges_sql=charged, params={"until": until})
    )


def _alike_charges_sql(alike: str) -> str:
    """What segments cost (billing.usage charges), from `alike`: (team_id, seg, c, sr, ss, e,
    w, n), n segments alike.

    A segment's charge depends only on its team, start, rates and stop (seg, c, sr, ss, e)
    and the watermark, so identical segments (a team's pods of one type, started together)
    are priced once and multiplied by their count: exact, as each costs the same telescoping
    shares. Summing the rates first (one price per team) would not be: the shares are rounded
    per resource (round(c * i / 60, 10)), the sum of the rounded shares is not the share of
    the summed rate, and the accruals check_ledger recomputes per resource would drift from
    the balances by up to 1e-10 a resource and minute. This is what cut the per-pod
    arithmetic (EXPLAIN ANALYZE at 100,000 pods: 0.63 s of the 1.5 s tick, 8 ROUNDs a pod)."""
    pieces = pieces_sql(alike, "GREATEST(x.seg, x.w)", "%(until)s")
    return charges_sql(amounts_sql(pieces), times="a.n")


def _post_segments(step: Step, scope: Scope, *, until: datetime) -> None:
    """A settlement: post the segments in scope up to where they are charged (`until`, or the
    team's watermark if that is later) and start them there."""
    segments = segments_sql(pods=scope.pods, volumes=scope.volumes)
    end = "GREATEST(x.seg, x.w, %(until)s)"
    params = {**scope.params, "until": until}
    rows = rows_sql(amounts_sql(pieces_sql(segments, "x.seg", end)))
    step.posted(usage.apply_usage(rows_sql=rows, params=params, created_at=timezone.now()))
    with connection.cursor() as cursor:
        for table, alias, condition in ((PODS, "p", scope.pods), (VOLUMES, "v", scope.volumes)):
            cursor.execute(
                f"UPDATE {table} {alias} SET metered_until = "
                f"GREATEST({alias}.metered_until, t.w, %(until)s) FROM {TEAMS} t "
                f"WHERE t.team_id = {alias}.team_id AND {condition}",
                params,
            )


def close_delay(team_id: int) -> timedelta:
    """How long after an hour ends the team's hour rows are posted: team id mod 60 minutes, so
    each minute tick posts the hour rows of about 1/60 of the teams (closing every hour in
    the tick at :00 writes ~2 rows a resource at once: 194 s at 1M pods here)."""
    return timedelta(minutes=team_id % CLOSE_SPREAD)


def close_before_sql(team_id: str) -> str:
    """SQL for close_delay: the hour before which the team's segments are posted at the tick
    `%(until)s` (the hour of until - delay)."""
    return f"date_trunc('hour', %(until)s - MOD({team_id}, {CLOSE_SPREAD}) * interval '1 minute')"


def _close_hours(step: Step, *, until: datetime) -> None:
    """Post every segment of the batch that began before its team's closing hour (the hour
    of until - close_delay), up to that hour, and start it there: one row per resource, kind
    and hour, a team's hour H posted by the tick at H+1 plus its delay. Only the pods of the
    teams whose groups hold such a segment are read (~1/60 of the teams, by index)."""
    closing = _closing_teams(until)
    if not closing:
        return
    params = {"until": until, "closing": closing}
    before = close_before_sql("t.team_id")
    with connection.cursor() as cursor:
        for table, alias in ((PODS, "p"), (VOLUMES, "v")):
            live = "p.status <> 'terminated' AND p.kind = 'pod' AND " if alias == "p" else ""
            cursor.execute(f"DROP TABLE IF EXISTS pods_meter_close_{alias}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE pods_meter_close_{alias} AS SELECT {alias}.id, "
                f"{before} AS b FROM {table} {alias} JOIN {TEAMS} t "
                f"ON t.team_id = {alias}.team_id WHERE {alias}.team_id = ANY(%(closing)s) "
                f"AND {live}{alias}.metered_until < {before} FOR UPDATE OF {alias} SKIP LOCKED",
                params,
            )
        if not _any_rows(cursor, "pods_meter_close_p", "pods_meter_close_v"):
            cursor.execute("DROP TABLE pods_meter_close_p, pods_meter_close_v")
            return
    segments = segments_sql(
        pods="p.id IN (SELECT id FROM pods_meter_close_p)",
        volumes="v.id IN (SELECT id FROM pods_meter_close_v)",
    )
    rows = rows_sql(amounts_sql(pieces_sql(segments, "x.seg", close_before_sql("x.team_id"))))
    step.posted(usage.apply_usage(rows_sql=rows, params=params, created_at=timezone.now()))
    with connection.cursor() as cursor:
        for table, alias in ((PODS, "p"), (VOLUMES, "v")):
            # The team condition lets the planner find the rows by index (it takes the
            # staged ids for many and hashes a scan of the whole table).
            cursor.execute(
                f"UPDATE {table} r SET metered_until = c.b FROM pods_meter_close_{alias} c "
                "WHERE r.id = c.id AND r.team_id = ANY(%(closing)s)",
                params,
            )
            cursor.execute(f"DROP TABLE pods_meter_close_{alias}")


def _closing_teams(until: datetime) -> list[int]:
    """The batch's teams with a segment that began before their closing hour."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT g.team_id FROM (SELECT team_id, metered_until FROM {GROUPS} "
            f"UNION ALL SELECT team_id, metered_until FROM {GROUPS_V}) AS g "
            f"WHERE g.metered_until < {close_before_sql('g.team_id')} ORDER BY g.team_id",
            {"until": until},
        )
        return [row[0] for row in cursor.fetchall()]


# Burn rate and the low-funds line ----------------------------------------------------------


def _per_hour(gb_sql: str, rate: str) -> str:
    """pods.pricing.per_hour in SQL: GB x rate per month over a 720-hour month, 10 places."""
    return f"ROUND(({gb_sql}) * %({rate})s / 720, 10)"


def team_burn_sql(scope: str) -> str:
    """(team_id, per_hour): what each team matching `scope` (an SQL condition on `team_id`)
    spends per hour right now, rounded item by item as pods.pricing rounds: holding pods their
    compute, volume and container disk, other live pods their volume at the stopped rate, and
    network volumes."""
    holding = "p.status IN ({})".format(", ".join(f"'{status}'" for status in Pod.HOLDING))
    pods = (
        f"SELECT p.team_id, CASE WHEN {holding} THEN {COMPUTE_RATE_SQL} "
        f"+ {_per_hour(VOLUME_GB_SQL, 'volume_running')} "
        f"+ {_per_hour('p.container_disk_gb', 'container_disk')} "
        f"ELSE {_per_hour(VOLUME_GB_SQL, 'volume_stopped')} END AS per_hour "
        f"FROM {pod_tables_sql()} WHERE p.status <> 'terminated' AND p.kind = 'pod' "
        f"AND {scope.format(team_id='p.team_id')}"
    )
    volumes = (
        f"SELECT v.team_id, ROUND({NETWORK_VOLUME_MONTH_SQL} / 720, 10) "
        f"FROM {VOLUMES} v WHERE {scope.format(team_id='v.team_id')}"
    )
    items = " UNION ALL ".join([pods, volumes, *(sql(scope) for sql in BURN_SQL)])
    return f"SELECT team_id, SUM(per_hour) AS per_hour FROM ({items}) AS items GROUP BY team_id"


def funds_floor_sql(per_hour: str) -> str:
    """The low-funds line for a burn rate: RUNWAY_MINUTES of it, at the ledger's precision."""
    return f"ROUND(({per_hour}) * {RUNWAY_MINUTES} / 60, 10)"


def team_burn_rates(team_ids: list[int]) -> dict[int, Decimal]:
    """Each team's burn rate ($/h); teams with nothing billable are left out."""
    sql = team_burn_sql("{team_id} = ANY(%(burn_teams)s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, {**price_params(), "burn_teams": list(team_ids)})
        return dict(cursor.fetchall())


# Open accruals (billing.usage.AccrualProvider) ---------------------------------------------

_WATERMARKS = f"(SELECT team_id, usage_metered_until AS w FROM {usage.ACCOUNTS})"


def _accrued_rows_sql(pods: str = "true", volumes: str = "true") -> str:
    """What each open segment has been charged and not posted: rows up to the watermark."""
    segments = segments_sql(_WATERMARKS, pods=pods, volumes=volumes)
    return rows_sql(amounts_sql(pieces_sql(segments, "x.seg", "GREATEST(x.seg, x.w)")))


def accrual_totals() -> dict[int, Decimal]:
    with transaction.atomic(), connection.cursor() as cursor:
        _no_jit(cursor)
        cursor.execute(
            f"SELECT team_id, SUM(amount) FROM ({_accrued_rows_sql()}) AS r GROUP BY team_id"
        )
        return {team_id: total for team_id, total in cursor.fetchall() if total}


def accrual_lines(team) -> list[usage.OpenAccrual]:
    rows = _accrued_rows_sql("p.team_id = %(team)s", "v.team_id = %(team)s")
    with transaction.atomic(), connection.cursor() as cursor:
        _no_jit(cursor)
        cursor.execute(
            f"""
            SELECT kind, source_type, source_id, description, date_trunc('hour', period_start),
                   SUM(amount), SUM(minutes)
            FROM ({rows}) AS r WHERE amount <> 0
            GROUP BY kind, source_type, source_id, description, date_trunc('hour', period_start)
            """,
            {"team": team.pk},
        )
        return [usage.OpenAccrual(*row) for row in cursor.fetchall()]


ACCRUALS = usage.AccrualProvider(totals=accrual_totals, lines=accrual_lines)


def pod_accrued(pod: Pod) -> dict[str, Decimal]:
    """{kind: amount} the pod has been charged in its open segment and not posted yet."""
    rows = _accrued_rows_sql("p.id = %(id)s", "false")
    with transaction.atomic(), connection.cursor() as cursor:
        _no_jit(cursor)
        cursor.execute(f"SELECT kind, SUM(amount) FROM ({rows}) AS r GROUP BY kind", {"id": pod.pk})
        return dict(cursor.fetchall())
