"""Per-minute metering of pods and network volumes, set-based, on PostgreSQL.

Every whole minute a pod spends in a billable state is charged once: compute (GPU price x count
at its cloud and pricing, its spot bid, or the CPU instance price) and storage (pod volume
$0.10/GB-month while running and $0.20 while stopped, container disk while running), network
volumes $0.07/GB-month under 1 TB and $0.05 from 1 TB, a month being 30 days. Each charge's
idempotency key is `<resource>:<id>:<kind>:<minute>`.

How minutes are known: `metered_until` on a pod (or network volume) is the first minute not yet
charged. A tick charges [metered_until, now) at the pod's current status, in batches of rows
locked with SKIP LOCKED, and moves metered_until on in the same transaction. A status change
(`change_status`) first settles the minutes before it at the old status, then skips the partial
minute it happens in, so a minute is charged only when the whole of it was spent in one state.
Two ticks at once split the rows between them; a tick killed halfway loses its transaction and
the next one charges the same minutes; the keys make any overlap harmless.

A pod that is stopping pays compute only until STOP_BILLED_FOR after the stop began (SIGKILL
comes STOP_GRACE after SIGTERM); a stop that never completes (the halt was lost, the machine
does not answer) is the platform's fault, so from then on the pod pays what a stopped pod pays.

Catch-up: when minutes pile up (the beat or the workers were down), a team is charged minute by
minute only until its balance falls below the low-funds line (RUNWAY_MINUTES of its burn rate);
its running pods' minutes after that are written off, not charged (billing.usage), and low funds
then stops the pods as it would have on time. Settling at a status change follows the same rule.

Minute amounts are telescoping shares (billing.money.period_share), computed in SQL with the
same formula: 60 consecutive minutes of $0.79/h cost exactly $0.79, a 30-day month of a 20 GB
stopped volume exactly $4.00.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing.money import ZERO
from billing.usage import post_usage, run_balance_hooks_on_commit
from pods import pricing
from pods.models import CpuInstanceType, GpuType, Machine, NetworkVolume, Pod

MINUTE = timedelta(minutes=1)
MINUTES_PER_MONTH = 30 * 24 * 60
BATCH_SIZE = 20_000
MINUTES = "pods_meter_minutes"
# Low funds: a team whose balance covers less than this many minutes of its burn rate has its
# pods stopped (pods.funds), and a catch-up charges its running pods no further.
RUNWAY_MINUTES = 10
# A stop sends SIGTERM, then SIGKILL this much later (pods.lifecycle.halt_pod).
STOP_GRACE = timedelta(seconds=5)
# How long a stopping pod pays compute: the SIGKILL deadline plus the halt's own work.
STOP_BILLED_FOR = STOP_GRACE + timedelta(seconds=10)


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


@dataclass
class TickResult:
    until: datetime
    pods: int = 0
    volumes: int = 0
    entries: int = 0
    total: Decimal = ZERO
    written_off_minutes: int = 0
    written_off: Decimal = ZERO
    team_ids: set[int] = field(default_factory=set)

    def add(self, batch, rows: int, *, volumes: bool = False) -> None:
        if volumes:
            self.volumes += rows
        else:
            self.pods += rows
        self.entries += batch.entries
        self.total += batch.total
        self.written_off_minutes += batch.written_off_minutes
        self.written_off += batch.written_off
        self.team_ids.update(batch.team_ids)


# Status changes ----------------------------------------------------------------------------


def change_status(pod: Pod, status: str, reason: str = "", *, at: datetime | None = None) -> None:
    """The one way a pod's status changes. The caller holds the pod's row lock (or owns a new
    pod) and saves it. Minutes before the change are charged at the old status first."""
    at = at or timezone.now()
    if pod.pk:
        # The tick may have moved it on since the caller loaded the pod.
        pod.metered_until = Pod.objects.values_list("metered_until", flat=True).get(pk=pod.pk)
    if pod.metered_until and meter_state(pod.status) != meter_state(status):
        settle_pod(pod, at=at)
        pod.metered_until = max(pod.metered_until, ceil_minute(at))
    elif pod.metered_until is None:
        pod.metered_until = ceil_minute(at)
    pod.status = status
    pod.status_reason = reason
    pod.status_changed_at = at


def settle_pod(pod: Pod, *, at: datetime) -> None:
    """Charge the pod's whole minutes before `at` at its current (old) status, as far as its
    team's funds reach (the catch-up rule)."""
    until = floor_minute(at)
    if pod.metered_until >= until:
        return
    with transaction.atomic():
        batch = _charge_pods([pod.pk], since=pod.metered_until, until=until)
        Pod.objects.filter(pk=pod.pk).update(metered_until=until)
    pod.metered_until = until
    run_balance_hooks_on_commit(batch.team_ids)


def settle_network_volume(volume: NetworkVolume, *, at: datetime) -> None:
    """Charge a network volume up to `at` (before it is deleted or resized)."""
    until = floor_minute(at)
    if volume.metered_until is None or volume.metered_until >= until:
        return
    with transaction.atomic():
        _charge_volumes([volume.pk], since=volume.metered_until, until=until)
        NetworkVolume.objects.filter(pk=volume.pk).update(metered_until=until)
    volume.metered_until = until


# The tick ----------------------------------------------------------------------------------


def meter(*, until: datetime | None = None, batch_size: int = BATCH_SIZE) -> TickResult:
    """Charge every pod and network volume up to the start of the current minute (or `until`)."""
    until = floor_minute(until or timezone.now())
    result = TickResult(until=until)
    _start_metering_new_rows()
    for model, charge in ((Pod, _charge_pods), (NetworkVolume, _charge_volumes)):
        after = 0
        while True:
            with transaction.atomic():
                rows = _claim_batch(model, until=until, after=after, size=batch_size)
                if not rows:
                    break
                since = min(metered for _, metered in rows)
                ids = [pk for pk, _ in rows]
                batch = charge(ids, since=since, until=until)
                model.objects.filter(pk__in=ids).update(metered_until=until)
                run_balance_hooks_on_commit(batch.team_ids)
            result.add(batch, len(ids), volumes=model is NetworkVolume)
            after = ids[-1]
    return result


def _start_metering_new_rows() -> None:
    """Rows that were never metered start at the first whole minute of their life."""
    for model, born in ((Pod, "created_at"), (NetworkVolume, "created_at")):
        for pk, created_at in model.objects.filter(metered_until=None).values_list("pk", born):
            model.objects.filter(pk=pk, metered_until=None).update(
                metered_until=ceil_minute(created_at)
            )


def _claim_batch(model, *, until: datetime, after: int, size: int) -> list[tuple[int, datetime]]:
    """Lock the next batch of rows due for metering; rows another tick or a status change
    holds are skipped (whoever holds them charges them)."""
    rows = model.objects.filter(metered_until__lt=until, pk__gt=after).order_by("pk")
    if model is Pod:
        rows = rows.exclude(status=Pod.Status.TERMINATED)
    rows = rows.select_for_update(skip_locked=True)
    return list(rows.values_list("pk", "metered_until")[:size])


# SQL ---------------------------------------------------------------------------------------


def ids_condition(column: str, ids: list[int]) -> tuple[str, object]:
    """`column` is one of `ids`: the SQL (with the named parameter %(ids)s) and its value."""
    return f"{column} = ANY(%(ids)s)", ids


def _create_minutes(cursor, since: datetime, until: datetime) -> None:
    """A temporary table of the minutes in [since, until): start, label, and the indexes of
    the minute within its hour and its 30-day month (for the telescoping shares)."""
    cursor.execute(f"DROP TABLE IF EXISTS {MINUTES}")
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE {MINUTES} AS
        SELECT g AS start, to_char(g AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI') AS label,
               CAST(MOD(epoch_minute, 60) AS INTEGER) AS i_hour,
               CAST(MOD(epoch_minute, {MINUTES_PER_MONTH}) AS INTEGER) AS i_month
        FROM generate_series(%(since)s, %(last)s, interval '1 minute') AS g,
             LATERAL (SELECT DIV(CAST(EXTRACT(EPOCH FROM g) AS BIGINT), 60) AS epoch_minute) e
        """,
        {"since": since, "last": until - MINUTE},
    )


def _share(total_sql: str, index: str, parts: int) -> str:
    """billing.money.period_share in SQL: round(t*(i+1)/n) - round(t*i/n), 10 places."""
    return (
        f"(ROUND(({total_sql}) * ({index} + 1) / {parts}, 10) "
        f"- ROUND(({total_sql}) * {index} / {parts}, 10))"
    )


COMPUTE_RATE_SQL = (
    "CASE WHEN p.gpu_count > 0 AND p.gpu_type_id IS NOT NULL THEN p.gpu_count * "
    "(CASE WHEN p.pricing = 'spot' THEN p.bid_per_gpu "
    "WHEN p.cloud_type = 'SECURE' THEN g.secure_price ELSE g.community_price END) "
    "WHEN p.cpu_instance_id IS NOT NULL THEN c.price ELSE 0 END"
)
VOLUME_GB_SQL = "(CASE WHEN p.network_volume_id IS NULL THEN p.volume_gb ELSE 0 END)"
NETWORK_VOLUME_MONTH_SQL = (
    "v.size_gb * (CASE WHEN v.size_gb >= %(large_from)s THEN %(large_rate)s ELSE %(rate)s END)"
)
# Minute `mm` of pod `p` is billed as running: the pod runs, or it is stopping and the minute
# ends within STOP_BILLED_FOR of the stop.
BILLED_RUNNING_SQL = (
    "(p.status = 'running' OR (p.status = 'stopping' "
    "AND mm.start + interval '1 minute' <= p.status_changed_at + %(stop_billed_for)s))"
)


def pod_tables_sql() -> str:
    """`p` pods with `g` their GPU type and `c` their CPU instance type."""
    pods, gpus, cpus = Pod._meta.db_table, GpuType._meta.db_table, CpuInstanceType._meta.db_table
    return (
        f"{pods} p LEFT JOIN {gpus} g ON g.id = p.gpu_type_id "
        f"LEFT JOIN {cpus} c ON c.id = p.cpu_instance_id"
    )


def storage_month_sql(running: str) -> str:
    """A pod's storage per month: the volume at the running or stopped rate, plus the
    container disk while running (`running` is an SQL condition)."""
    return (
        f"(CASE WHEN {running} THEN {VOLUME_GB_SQL} * %(volume_running)s "
        f"+ p.container_disk_gb * %(container_disk)s "
        f"ELSE {VOLUME_GB_SQL} * %(volume_stopped)s END)"
    )


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
        f"FROM {pod_tables_sql()} WHERE p.status <> 'terminated' "
        f"AND {scope.format(team_id='p.team_id')}"
    )
    volumes = (
        f"SELECT v.team_id, ROUND({NETWORK_VOLUME_MONTH_SQL} / 720, 10) "
        f"FROM {NetworkVolume._meta.db_table} v WHERE {scope.format(team_id='v.team_id')}"
    )
    return (
        f"SELECT team_id, SUM(per_hour) AS per_hour FROM ({pods} UNION ALL {volumes}) AS items "
        "GROUP BY team_id"
    )


def funds_floor_sql(per_hour: str) -> str:
    """The low-funds line for a burn rate: RUNWAY_MINUTES of it, at the ledger's precision."""
    return f"ROUND(({per_hour}) * {RUNWAY_MINUTES} / 60, 10)"


def team_burn_rates(team_ids: list[int]) -> dict[int, Decimal]:
    """Each team's burn rate ($/h); teams with nothing billable are left out."""
    sql = team_burn_sql("{team_id} = ANY(%(burn_teams)s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, {**price_params(), "burn_teams": list(team_ids)})
        return dict(cursor.fetchall())


# Charges -----------------------------------------------------------------------------------

# The funds floor of the teams a batch charges (billing.usage.post_usage's floor_sql).
_FLOOR_TEAMS = "{team_id} = ANY(%(floor_teams)s)"
FLOOR_SQL = (
    f"SELECT team_id, {funds_floor_sql('per_hour')} AS floor "
    f"FROM ({team_burn_sql(_FLOOR_TEAMS)}) AS burn"
)


def _pod_charges_sql(ids_sql: str) -> str:
    """One row per pod, minute and kind (compute, storage) with a non-zero amount, with the
    minute and whether low funds would stop it (billing.usage.FLOOR_COLUMNS)."""
    running = BILLED_RUNNING_SQL
    base = (
        f"FROM {pod_tables_sql()} JOIN {Machine._meta.db_table} m ON m.id = p.machine_id "
        f"JOIN {MINUTES} mm ON mm.start >= p.metered_until AND mm.start < %(until)s "
        f"WHERE {ids_sql} AND m.is_online AND p.status <> 'terminated'"
    )
    extra = f"mm.start AS minute, {running} AS cuttable, 'Pod ' || p.name AS resource"
    compute = (
        f"SELECT p.team_id, -{_share(COMPUTE_RATE_SQL, 'mm.i_hour', 60)} AS amount, "
        "'usage_compute' AS kind, 'pod:' || p.public_id || ':compute:' || mm.label AS key, "
        "'pod' AS source_type, p.public_id AS source_id, 'Compute, pod ' || p.name AS description, "
        f"{extra} {base} AND {running}"
    )
    storage_month = storage_month_sql(running)
    storage = (
        f"SELECT p.team_id, -{_share(storage_month, 'mm.i_month', MINUTES_PER_MONTH)}, "
        "'usage_storage', 'pod:' || p.public_id || ':storage:' || mm.label, "
        f"'pod', p.public_id, 'Storage, pod ' || p.name, {extra} {base}"
    )
    return (
        "SELECT team_id, amount, kind, key AS idempotency_key, source_type, source_id, "
        "description, minute, cuttable, resource "
        f"FROM ({compute} UNION ALL {storage}) AS charges WHERE amount <> 0"
    )


def _charge_pods(ids: list[int], *, since: datetime, until: datetime):
    condition, ids_value = ids_condition("p.id", ids)
    params = {**price_params(), "until": until, "ids": ids_value}
    with connection.cursor() as cursor:
        _create_minutes(cursor, since, until)
    return post_usage(
        select_sql=_pod_charges_sql(condition),
        params=params,
        created_at=timezone.now(),
        floor_sql=FLOOR_SQL,
    )


def _charge_volumes(ids: list[int], *, since: datetime, until: datetime):
    condition, ids_value = ids_condition("v.id", ids)
    sql = (
        f"SELECT v.team_id, -{_share(NETWORK_VOLUME_MONTH_SQL, 'mm.i_month', MINUTES_PER_MONTH)} "
        "AS amount, "
        "'usage_storage' AS kind, "
        "'network_volume:' || v.public_id || ':storage:' || mm.label AS idempotency_key, "
        "'network_volume' AS source_type, v.public_id AS source_id, "
        "'Network volume ' || v.name AS description "
        f"FROM {NetworkVolume._meta.db_table} v "
        f"JOIN {MINUTES} mm ON mm.start >= v.metered_until AND mm.start < %(until)s "
        f"WHERE {condition}"
    )
    params = {**price_params(), "until": until, "ids": ids_value}
    with connection.cursor() as cursor:
        _create_minutes(cursor, since, until)
    return post_usage(
        select_sql=f"SELECT * FROM ({sql}) AS v WHERE amount <> 0",
        params=params,
        created_at=timezone.now(),
    )
