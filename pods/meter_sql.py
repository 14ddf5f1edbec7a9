"""The SQL of pods.metering: open usage segments as rows, cut into hour pieces, priced in
closed form (PostgreSQL).

A segment is a resource's minutes from `metered_until` on, at the rates it was opened with
(pods: compute $/h while billed running, storage $/month while billed running and while not,
and `meter_running_until`, the end of the billed-running minutes of a stopping pod; network
volumes: storage $/month). Every query below reads segments through `segments_sql`, with `w`
the team's watermark (NULL before its first tick: nothing of the segment is charged yet).

Minute amounts are the telescoping shares of billing.money.period_share, so the minutes
[a, b) of one hour cost round(t * b / n) - round(t * a / n) with the indexes of a and b in the
hour (compute, n = 60) or in the 30-day month (storage, n = 43,200): exactly what the sum of
the per-minute charges cost before the roll-up, to the 10th decimal, and a whole hour at
$0.79/h exactly $0.79.
"""

from __future__ import annotations

from pods.models import CpuInstanceType, GpuType, Machine, NetworkVolume, Pod

PODS = Pod._meta.db_table
VOLUMES = NetworkVolume._meta.db_table
MINUTES_PER_MONTH = 30 * 24 * 60
# The teams of a batch and their watermarks (team_id, w): a temporary table.
TEAMS = "pods_meter_teams"
# The batch's pods and network volumes grouped by what their segments and current rates
# depend on (groups_sql): temporary tables.
GROUPS = "pods_meter_groups"
GROUPS_V = "pods_meter_groups_v"

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
_BILLED_RUNNING = "p.status IN ('running', 'stopping')"


def pod_tables_sql(pods: str = PODS) -> str:
    """`p` pods (or the rows of `pods` with their columns: GROUPS) with `g` their GPU type
    and `c` their CPU instance type."""
    gpus, cpus = GpuType._meta.db_table, CpuInstanceType._meta.db_table
    return (
        f"{pods} p LEFT JOIN {gpus} g ON g.id = p.gpu_type_id "
        f"LEFT JOIN {cpus} c ON c.id = p.cpu_instance_id"
    )


def segments_sql(teams: str = TEAMS, *, pods: str = "true", volumes: str = "true") -> str:
    """Open segments of the teams in `teams` (a relation of team_id, w), of the pods matching
    `pods` and the network volumes matching `volumes` (SQL conditions on p and v). Serverless
    workers' pods have none: serverless.metering bills them per second."""
    return f"""
        SELECT p.id, p.team_id, 'pod' AS source_type, p.public_id AS source_id, p.name,
               p.metered_until AS seg, COALESCE(p.meter_compute, 0) AS c,
               COALESCE(p.meter_storage_running, 0) AS sr,
               COALESCE(p.meter_storage_stopped, 0) AS ss, p.meter_running_until AS e,
               p.status = 'running' AS cuttable, t.w
        FROM {PODS} p JOIN {teams} t ON t.team_id = p.team_id
        WHERE p.status <> 'terminated' AND p.metered_until IS NOT NULL AND p.kind = 'pod'
          AND {pods}
        UNION ALL
        SELECT v.id, v.team_id, 'network_volume', v.public_id, v.name, v.metered_until,
               0, COALESCE(v.meter_storage, 0), 0, CAST(NULL AS TIMESTAMPTZ), false, t.w
        FROM {VOLUMES} v JOIN {teams} t ON t.team_id = v.team_id
        WHERE v.metered_until IS NOT NULL AND {volumes}
    """


def pieces_sql(segments: str, start: str, end: str, *, step: str = "hour") -> str:
    """Each segment's minutes [start, end) (SQL over its columns, as x.*) cut at every hour
    (or every minute) boundary: the segment's columns, h (the hour), pa and pb. A range within
    one hour (every tick on time) is its own piece, without a series."""
    ranges = f"SELECT x.*, {start} AS ra, {end} AS rb FROM ({segments}) AS x"
    one_hour = "date_trunc('hour', s.ra) = date_trunc('hour', s.rb - interval '1 minute')"
    series = f"""
        SELECT s.*, date_trunc('hour', g.at) AS h, GREATEST(s.ra, g.at) AS pa,
               LEAST(s.rb, g.at + interval '1 {step}') AS pb
        FROM s CROSS JOIN LATERAL generate_series(
            date_trunc('{step}', s.ra), s.rb - interval '1 minute', interval '1 {step}') AS g(at)
        WHERE s.rb > s.ra
    """
    if step != "hour":
        return f"WITH s AS ({ranges}) {series}"
    return f"""
        WITH s AS ({ranges})
        SELECT s.*, date_trunc('hour', s.ra) AS h, s.ra AS pa, s.rb AS pb
        FROM s WHERE s.rb > s.ra AND {one_hour}
        UNION ALL {series} AND NOT {one_hour}
    """


def _minutes(interval: str) -> str:
    """Whole minutes of an interval; date_part is float8 (EXTRACT is numeric, slower), exact
    for any whole number of seconds under 2^53."""
    return f"CAST(date_part('epoch', {interval}) AS INTEGER) / 60"


def _cumulative(rate: str, index: str, parts: int) -> str:
    return f"ROUND({rate} * ({index}) / {parts}, 10)"


def _share(rate: str, start: str, end: str, parts: int) -> str:
    """What the indexes [start, end) cost at `rate` over `parts`: the telescoping shares; none
    at a zero rate (most segments have no stopped-storage rate, stopped pods no compute), so
    the tick skips their numeric divisions."""
    shares = f"{_cumulative(rate, end, parts)} - {_cumulative(rate, start, parts)}"
    return f"CASE WHEN {rate} = 0 THEN 0 ELSE {shares} END"


def amounts_sql(pieces: str) -> str:
    """Each piece with what it costs (compute and storage, positive) and its billed minutes."""
    n = MINUTES_PER_MONTH
    storage = (
        f"{_share('q.sr', 'q.mon + q.ia', 'q.mon + q.ir', n)} "
        f"+ {_share('q.ss', 'q.mon + q.ir', 'q.mon + q.ib', n)}"
    )
    return f"""
        SELECT q.*, {_share("q.c", "q.ia", "q.ir", 60)} AS compute,
               {storage} AS storage, q.ir - q.ia AS compute_minutes,
               q.ib - q.ia AS storage_minutes
        FROM (SELECT k.*, {_minutes("k.pa - k.h")} AS ia, {_minutes("k.pb - k.h")} AS ib,
                     {_minutes("GREATEST(k.pa, LEAST(k.pb, COALESCE(k.e, k.pb))) - k.h")} AS ir,
                     MOD(CAST(date_part('epoch', k.h) AS BIGINT) / 60, {n}) AS mon
              FROM ({pieces}) AS k) AS q
    """


def _label(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYYMMDDHH24MI')"


def rows_sql(amounts: str) -> str:
    """Ledger rows (billing.usage.USAGE_COLUMNS) for priced pieces: compute and storage."""
    period = f"{_label('a.pa')} || '-' || {_label('a.pb')}"
    storage_description = (
        "CASE WHEN a.source_type = 'pod' THEN 'Storage, pod ' || a.name "
        "ELSE 'Network volume ' || a.name END"
    )
    return f"""
        WITH a AS ({amounts})
        SELECT a.team_id, -a.compute AS amount, 'usage_compute' AS kind,
               a.source_type || ':' || a.source_id || ':compute:' || {period} AS idempotency_key,
               a.source_type, a.source_id, 'Compute, pod ' || a.name AS description,
               a.pa AS period_start, a.pb AS period_end, a.compute_minutes AS minutes
        FROM a
        UNION ALL
        SELECT a.team_id, -a.storage, 'usage_storage',
               a.source_type || ':' || a.source_id || ':storage:' || {period},
               a.source_type, a.source_id, {storage_description}, a.pa, a.pb, a.storage_minutes
        FROM a
    """


def charges_sql(amounts: str, *, times: str = "1") -> str:
    """What priced pieces cost each team (billing.usage charges: team_id, amount negative),
    each piece `times` over (SQL: a count of identical segments)."""
    return f"SELECT a.team_id, -(a.compute + a.storage) * {times} AS amount FROM ({amounts}) AS a"


def current_pod_rates_sql() -> str:
    """What each pod's segment would be opened with now (c, sr, ss, e), as `p`: nothing on an
    offline machine, compute and the running storage while it runs or stops (a stopping pod
    until STOP_BILLED_FOR after the stop), the stopped storage otherwise."""
    online_running = f"m.is_online AND {_BILLED_RUNNING}"
    return f"""
        CASE WHEN {online_running} THEN {COMPUTE_RATE_SQL} ELSE 0 END AS cur_c,
        CASE WHEN NOT m.is_online THEN 0
             WHEN {_BILLED_RUNNING} THEN {VOLUME_GB_SQL} * %(volume_running)s
                  + p.container_disk_gb * %(container_disk)s
             ELSE {VOLUME_GB_SQL} * %(volume_stopped)s END AS cur_sr,
        CASE WHEN m.is_online AND p.status = 'stopping'
             THEN {VOLUME_GB_SQL} * %(volume_stopped)s ELSE 0 END AS cur_ss,
        CASE WHEN p.status = 'stopping'
             THEN date_trunc('minute', p.status_changed_at + %(stop_billed_for)s) END AS cur_e
    """


def stale_pods_sql(pods: str) -> str:
    """Pods of the batch whose segment is not opened yet or whose rates changed (a machine
    went offline or came back, a price changed), with their current rates, locked (skipping
    rows another transaction holds: it settles them itself)."""
    return f"""
        SELECT * FROM (
            SELECT p.id, p.meter_compute, p.meter_storage_running, p.meter_storage_stopped,
                   p.meter_running_until, {current_pod_rates_sql()}
            FROM {pod_tables_sql()} JOIN {Machine._meta.db_table} m ON m.id = p.machine_id
            JOIN {TEAMS} t ON t.team_id = p.team_id
            WHERE p.status <> 'terminated' AND p.metered_until IS NOT NULL AND p.kind = 'pod'
              AND {pods}
        ) AS r
        WHERE {_STALE}
    """


_STALE = """r.meter_compute IS NULL
           OR (r.meter_compute, r.meter_storage_running, r.meter_storage_stopped,
               r.meter_running_until) IS DISTINCT FROM (r.cur_c, r.cur_sr, r.cur_ss, r.cur_e)"""


def stale_volumes_sql(volumes: str) -> str:
    return f"""
        SELECT v.id, {NETWORK_VOLUME_MONTH_SQL} AS cur_sr
        FROM {VOLUMES} v JOIN {TEAMS} t ON t.team_id = v.team_id
        WHERE v.metered_until IS NOT NULL AND {volumes}
          AND v.meter_storage IS DISTINCT FROM {NETWORK_VOLUME_MONTH_SQL}
    """


# The groups: one scan of the batch's pods a tick ------------------------------------------

# What a pod's open segment and its current rates (current_pod_rates_sql) depend on.
_GROUPED = (
    "team_id",
    "metered_until",
    "meter_compute",
    "meter_storage_running",
    "meter_storage_stopped",
    "meter_running_until",
    "status",
    "machine_id",
    "gpu_type_id",
    "cpu_instance_id",
    "gpu_count",
    "pricing",
    "cloud_type",
    "bid_per_gpu",
    "container_disk_gb",
)


def groups_sql() -> str:
    """The batch's pods grouped by everything their segment and its current rates depend on,
    with their count n: a few rows a team (its pods of one kind started together are one).
    The tick scans the pods once for them, then finds what is stale, charges and picks the
    teams whose hour closes from these rows, not from the pods. `volume_gb` is the pod's own
    volume (none with a network volume), so the rate SQL's network_volume_id is NULL here;
    status_changed_at matters only while stopping (the end of its billed-running minutes)."""
    grouped = ", ".join(f"p.{column}" for column in _GROUPED)
    return f"""
        SELECT {grouped}, {VOLUME_GB_SQL} AS volume_gb,
               CAST(NULL AS INTEGER) AS network_volume_id,
               CASE WHEN p.status = 'stopping' THEN p.status_changed_at END AS status_changed_at,
               COUNT(*) AS n
        FROM {PODS} p JOIN {TEAMS} t ON t.team_id = p.team_id
        WHERE p.status <> 'terminated' AND p.metered_until IS NOT NULL AND p.kind = 'pod'
        GROUP BY {grouped}, {VOLUME_GB_SQL},
                 CASE WHEN p.status = 'stopping' THEN p.status_changed_at END
    """


def volume_groups_sql() -> str:
    return f"""
        SELECT v.team_id, v.metered_until, v.meter_storage, v.size_gb, COUNT(*) AS n
        FROM {VOLUMES} v JOIN {TEAMS} t ON t.team_id = v.team_id
        WHERE v.metered_until IS NOT NULL
        GROUP BY v.team_id, v.metered_until, v.meter_storage, v.size_gb
    """


def any_stale_sql() -> str:
    """Whether stale_pods_sql or stale_volumes_sql would find anything in the batch (the
    rates of a group are those of each of its pods): most ticks nothing is."""
    pods = f"""
        SELECT 1 FROM (
            SELECT p.meter_compute, p.meter_storage_running, p.meter_storage_stopped,
                   p.meter_running_until, {current_pod_rates_sql()}
            FROM {pod_tables_sql(GROUPS)} JOIN {Machine._meta.db_table} m ON m.id = p.machine_id
        ) AS r WHERE {_STALE}
    """
    volumes = (
        f"SELECT 1 FROM {GROUPS_V} v WHERE v.meter_storage IS DISTINCT FROM "
        f"{NETWORK_VOLUME_MONTH_SQL}"
    )
    return f"SELECT EXISTS ({pods}) OR EXISTS ({volumes})"


def group_segments_sql() -> str:
    """The batch's segments as groups: segments_sql's team_id, seg, c, sr, ss, e and w, and
    n, the number of resources alike."""
    return f"""
        SELECT g.team_id, g.metered_until AS seg, COALESCE(g.meter_compute, 0) AS c,
               COALESCE(g.meter_storage_running, 0) AS sr,
               COALESCE(g.meter_storage_stopped, 0) AS ss, g.meter_running_until AS e, t.w, g.n
        FROM {GROUPS} g JOIN {TEAMS} t ON t.team_id = g.team_id
        UNION ALL
        SELECT v.team_id, v.metered_until, 0, COALESCE(v.meter_storage, 0), 0,
               CAST(NULL AS TIMESTAMPTZ), t.w, v.n
        FROM {GROUPS_V} v JOIN {TEAMS} t ON t.team_id = v.team_id
    """
