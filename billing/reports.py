"""Read-side billing figures for pages and charts: spend by day and kind, runway, and the
ledger statement (usage per resource per hour or day)."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Case, DateTimeField, F, Func, Sum, Value, When
from django.db.models.functions import Right, TruncDate
from django.utils import timezone

from billing.models import LedgerEntry
from billing.money import ZERO, as_string, format_usd, to_money
from billing.usage import open_accruals
from teams.models import Team

SPEND_KINDS = [
    LedgerEntry.Kind.USAGE_COMPUTE,
    LedgerEntry.Kind.USAGE_STORAGE,
    LedgerEntry.Kind.USAGE_SERVERLESS,
]


def _spend(team: Team, days: int):
    since = timezone.now() - timedelta(days=days)
    return LedgerEntry.objects.filter(team=team, kind__in=SPEND_KINDS, created_at__gte=since)


def spend_by_day(team: Team, days: int = 30) -> list[tuple[date, Decimal]]:
    """Every day of the window (zero days included), spend as a positive amount."""
    rows = (
        _spend(team, days)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("amount"))
    )
    totals = {row["day"]: -row["total"] for row in rows}
    today = timezone.now().date()
    return [
        (day, totals.get(day, ZERO))
        for day in (today - timedelta(days=offset) for offset in range(days - 1, -1, -1))
    ]


def spend_by_kind(team: Team, days: int = 30) -> list[tuple[str, Decimal]]:
    rows = _spend(team, days).values("kind").annotate(total=Sum("amount"))
    totals = {row["kind"]: -row["total"] for row in rows}
    labels = dict(LedgerEntry.Kind.choices)
    return [(labels[kind], totals.get(kind, ZERO)) for kind in SPEND_KINDS]


def chart_data(team: Team) -> dict:
    """For json_script: labels and decimal strings (never floats; Chart.js parses strings)."""
    by_day = spend_by_day(team)
    by_kind = spend_by_kind(team)
    return {
        "has_spend": any(amount for _, amount in by_kind),
        "days": {
            "labels": [day.isoformat() for day, _ in by_day],
            "values": [as_string(amount) for _, amount in by_day],
            "display": [format_usd(amount) for _, amount in by_day],
        },
        "kinds": {
            "labels": [label for label, _ in by_kind],
            "values": [as_string(amount) for _, amount in by_kind],
            "display": [format_usd(amount) for _, amount in by_kind],
        },
    }


def runway(balance: Decimal, burn_per_hour: Decimal) -> timedelta | None:
    """How long the balance lasts at the current burn rate (None when nothing is running)."""
    if burn_per_hour <= 0:
        return None
    if balance <= 0:
        return timedelta(0)
    seconds = int(balance * 3600 / burn_per_hour)
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """3 d 4 h, 5 h 12 min, 7 min; under a minute is 'less than a minute'."""
    minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "less than a minute"


# The ledger as people read it ---------------------------------------------------------------
#
# Usage is summed per resource (source_type, source_id) and kind per hour or per day; every
# other entry (top-ups, commissions, adjustments, refunds, invoice payments) is listed as
# itself. Rows are grouped in SQL, so a team with years of per-minute rows still gets a page
# in a few queries. Periods are UTC days and hours (no team or user has a timezone setting).

LEDGER_TIME_ZONE = UTC
GROUPS = ("day", "hour", "entry")
USAGE_KINDS = sorted(LedgerEntry.USAGE_KINDS)
# A per-minute usage row (written before the hourly roll-up) has no period; its key ends in the
# minute it charges ("pod:<id>:compute:202612011059", UTC): that minute, not the tick that
# posted it (a catch-up posts hours of minutes at once, minute 10:59 is posted at 11:00), is
# when the usage happened.
MINUTE_KEY = r":[0-9]{12}$"


def _key_minute() -> Func:
    return Func(
        Right("idempotency_key", 12),
        Value("YYYYMMDDHH24MI"),
        template="(to_timestamp(%(expressions)s)::timestamp AT TIME ZONE 'UTC')",
        output_field=DateTimeField(),
    )


def covered_moment() -> Case:
    """When an entry's money was spent: the start of the period a rolled-up usage row covers
    (within one hour, billing.usage), the minute an older per-minute row charges, otherwise
    the moment it was posted. Never after created_at (usage is posted once it is over)."""
    return Case(
        When(period_start__isnull=False, then=F("period_start")),
        When(kind__in=USAGE_KINDS, idempotency_key__regex=MINUTE_KEY, then=_key_minute()),
        default=F("created_at"),
        output_field=DateTimeField(),
    )


def ledger_entries(team: Team):
    """The team's entries with `moment` (covered_moment), for LedgerFilterForm to filter."""
    return LedgerEntry.objects.for_team(team).annotate(moment=covered_moment())


@dataclass(frozen=True)
class LedgerLine:
    """One line of the statement: a resource's usage over a period (entries > 1 possible,
    entry_id empty), or one ledger entry."""

    section: datetime
    period: datetime
    kind: str
    source_type: str
    source_id: str
    description: str
    amount: Decimal
    entries: int
    entry_id: str | None
    balance_after: Decimal | None
    posted_at: datetime
    # The ledger's query string that opens what this line sums ("" for a single entry).
    drill: str = ""
    # An open accrual (charged, not posted yet): the minutes it holds so far.
    open_minutes: int | None = None

    @property
    def is_credit(self) -> bool:
        return self.amount > 0

    @property
    def is_usage(self) -> bool:
        return self.kind in LedgerEntry.USAGE_KINDS

    @property
    def kind_label(self) -> str:
        return LedgerEntry.Kind(self.kind).label

    @property
    def resource(self) -> str:
        return f"{self.source_type}:{self.source_id}"


@dataclass(frozen=True)
class Section:
    """A day or an hour of the statement with its totals (over the whole period, also when
    the page shows only part of it)."""

    start: datetime
    unit: str
    usage: Decimal
    credits: Decimal
    net: Decimal
    entries: int
    lines: list[LedgerLine] = field(default_factory=list)
    # The current hour's usage, charged to the balance and not posted as ledger rows yet.
    is_open: bool = False

    @property
    def end(self) -> datetime:
        return self.start + (timedelta(hours=1) if self.unit == "hour" else timedelta(days=1))


# Each grouping's row period and section period.
ROW_UNIT = {"day": "day", "hour": "hour", "entry": None}
SECTION_UNIT = {"day": "day", "hour": "hour", "entry": "day"}
LINE_COLUMNS = "section, period, kind, source_type, source_id"
ENTRY_COLUMNS = (
    "moment",
    "kind",
    "source_type",
    "source_id",
    "description",
    "amount",
    "public_id",
    "balance_after",
    "created_at",
    "id",
)
# Newest activity first within a day or hour; a catch-up's minutes (posted at once) by minute.
_ORDER = "ORDER BY section DESC, posted_at DESC, period DESC, kind, source_type, source_id, id DESC"
# A page number past this is past any statement (and OFFSET stays within bigint).
MAX_PAGE = 10**9


def _trunc_sql(unit: str | None) -> str:
    if unit is None:
        return "moment"
    zone = f"AT TIME ZONE '{LEDGER_TIME_ZONE}'"
    return f"date_trunc('{unit}', moment {zone}) {zone}"


class _CountedPaginator(Paginator):
    """A Paginator told its count (the page query counted the lines as it read them)."""

    def __init__(self, object_list, per_page: int, count: int) -> None:
        super().__init__(object_list, per_page)
        self.known_count = count

    @cached_property
    def count(self) -> int:
        return self.known_count


class Statement:
    """The filtered entries grouped as `group` says: pages, iteration and period totals, each
    one pass over the entries (the moment of each computed once: OFFSET 0 keeps PostgreSQL
    from inlining its expression into every column that uses it)."""

    def __init__(self, entries, group: str) -> None:
        self.group = group if group in GROUPS else "day"
        self.entries = entries.order_by()

    def _entries_sql(self, entries) -> tuple[str, list]:
        sql, params = entries.values_list(*ENTRY_COLUMNS).query.sql_with_params()
        section, period = _trunc_sql(SECTION_UNIT[self.group]), _trunc_sql(ROW_UNIT[self.group])
        return (
            f"SELECT {section} AS section, {period} AS period, e0.* FROM ({sql} OFFSET 0) AS e0",
            list(params),
        )

    def _sql(self) -> tuple[str, list]:
        """Usage summed per line, other entries as themselves: two scans, so the moment is
        computed only for the rows each one keeps."""
        singles = (
            "SELECT section, moment AS period, kind, source_type, source_id, description, "
            "amount, 1 AS entries, public_id, balance_after, created_at AS posted_at, id "
            "FROM ({}) AS e"
        )
        if self.group == "entry":
            sql, params = self._entries_sql(self.entries)
            return singles.format(sql), params
        usage_sql, usage_params = self._entries_sql(self.entries.filter(kind__in=USAGE_KINDS))
        other_sql, other_params = self._entries_sql(self.entries.exclude(kind__in=USAGE_KINDS))
        grouped = (
            f"SELECT {LINE_COLUMNS}, MAX(description) AS description, SUM(amount) AS amount, "
            "COUNT(*) AS entries, NULL AS public_id, NULL AS balance_after, "
            "MAX(created_at) AS posted_at, NULL AS id "
            f"FROM ({usage_sql}) AS e GROUP BY {LINE_COLUMNS}"
        )
        return f"{grouped} UNION ALL {singles.format(other_sql)}", usage_params + other_params

    def _window(self, offset: int, limit: int | None) -> tuple[list[LedgerLine], int]:
        """The lines [offset, offset + limit) and how many lines there are in all (0 when the
        window is past the end)."""
        sql, params = self._sql()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT *, COUNT(*) OVER () FROM ({sql}) AS lines {_ORDER} LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = cursor.fetchall()
        return [_line(row[:-1], self.group) for row in rows], (rows[0][-1] if rows else 0)

    def count(self) -> int:
        sql, params = self._sql()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS lines", params)
            return cursor.fetchone()[0]

    def page(self, number, per_page: int) -> Page:
        """Page `number` (1 when it is not a number, the last one when past the end)."""
        try:
            number = min(max(int(str(number)), 1), MAX_PAGE)
        except ValueError:
            number = 1
        lines, count = self._window((number - 1) * per_page, per_page)
        if not lines and number > 1:
            number = max(-(-self.count() // per_page), 1)
            lines, count = self._window((number - 1) * per_page, per_page)
        return Page(lines, number, _CountedPaginator(self, per_page, count))

    def __getitem__(self, window: slice) -> list[LedgerLine]:
        offset = window.start or 0
        return self._window(offset, None if window.stop is None else window.stop - offset)[0]

    def __iter__(self) -> Iterator[LedgerLine]:
        """Every line, read through a server-side cursor (the CSV streams any size)."""
        sql, params = self._sql()
        with connection.chunked_cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({sql}) AS lines {_ORDER}", params)
            while rows := cursor.fetchmany(2000):
                yield from (_line(row, self.group) for row in rows)

    def total(self) -> Decimal:
        return self.entries.total()

    def sections(self, lines: list[LedgerLine]) -> list[Section]:
        """The lines under their day or hour, each with the period's totals (one query)."""
        starts = sorted({line.section for line in lines}, reverse=True)
        totals = self._section_totals(starts) if starts else {}
        sections = {start: totals[start] for start in starts}
        for line in lines:
            sections[line.section].lines.append(line)
        return list(sections.values())

    def _section_totals(self, starts: list[datetime]) -> dict[datetime, Section]:
        # moment <= created_at, so no entry posted before the oldest period shown is in it.
        sql, params = self._entries_sql(self.entries.filter(created_at__gte=min(starts)))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT section, COALESCE(SUM(amount) FILTER (WHERE kind = ANY(%s)), 0), "
                "COALESCE(SUM(amount) FILTER (WHERE amount > 0), 0), SUM(amount), COUNT(*) "
                f"FROM ({sql}) AS e WHERE section = ANY(%s) GROUP BY section",
                [USAGE_KINDS, *params, starts],
            )
            rows = cursor.fetchall()
        unit = SECTION_UNIT[self.group]
        return {
            section: Section(section, unit, to_money(usage), to_money(credits), net, count)
            for section, usage, credits, net, count in rows
        }


def _aware(moment: datetime) -> datetime:
    """Truncated periods come back from raw SQL as naive UTC timestamps."""
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=LEDGER_TIME_ZONE)


def _drill(line: LedgerLine, group: str) -> str:
    """A day opens its hours for that resource and kind; an hour, the entries it sums."""
    if line.entry_id is not None or group == "entry":
        return ""
    query = {"kind": line.kind, "resource": line.resource}
    if group == "day":
        day = line.period.date().isoformat()
        query.update(group="hour", since=day, until=day)
    else:
        query.update(group="entry", hour=line.period.strftime("%Y-%m-%dT%H:%M"))
    return urlencode(query)


def _line(row: tuple, group: str) -> LedgerLine:
    section, period, *rest, _id = row
    line = LedgerLine(_aware(section), _aware(period), *rest)
    return replace(line, drill=_drill(line, group))


def open_sections(team: Team, keeps: Callable[[LedgerLine], bool]) -> list[Section]:
    """The usage charged to the balance and not posted yet (billing.usage.open_accruals: the
    current hour, per resource and kind) as lines, per hour, those `keeps` accepts."""
    lines = [_open_line(accrual) for accrual in open_accruals(team)]
    by_hour: dict[datetime, list[LedgerLine]] = {}
    for line in lines:
        if line.amount and keeps(line):
            by_hour.setdefault(line.section, []).append(line)
    sections = []
    for hour in sorted(by_hour, reverse=True):
        total = sum((line.amount for line in by_hour[hour]), ZERO)
        hour_lines = by_hour[hour]
        sections.append(Section(hour, "hour", total, ZERO, total, 0, hour_lines, is_open=True))
    return sections


def _open_line(accrual) -> LedgerLine:
    hour = _aware(accrual.hour)
    return LedgerLine(
        section=hour,
        period=hour,
        kind=accrual.kind,
        source_type=accrual.source_type,
        source_id=accrual.source_id,
        description=accrual.description,
        amount=to_money(accrual.amount),
        entries=0,
        entry_id=None,
        balance_after=None,
        posted_at=hour,
        open_minutes=accrual.minutes,
    )


UNIT_LENGTH = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
CSV_HEADER = [
    "row",
    "period_start",
    "period_end",
    "kind",
    "description",
    "source_type",
    "source_id",
    "entries",
    "amount_usd",
    "entry_id",
    "balance_after_usd",
    "posted_at",
]


def _csv_text(value: str) -> str:
    # Spreadsheet apps run a cell starting with one of these as a formula, and pod names and
    # descriptions are typed by members (amounts stay numbers: they are ours).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_line(line: LedgerLine, unit: str | None) -> list[str]:
    end = (line.period + UNIT_LENGTH[unit]).isoformat() if unit and line.is_usage else ""
    return [
        "usage" if line.entry_id is None else "entry",
        line.period.isoformat(),
        end,
        line.kind,
        _csv_text(line.description),
        _csv_text(line.source_type),
        _csv_text(line.source_id),
        str(line.entries),
        str(line.amount),
        line.entry_id or "",
        "" if line.balance_after is None else str(line.balance_after),
        line.posted_at.isoformat(),
    ]


def _csv_open(line: LedgerLine) -> list[str]:
    """An open accrual: its hour, the minutes it holds so far, not posted (no entry, no time)."""
    row = _csv_line(line, "hour")
    row[0], row[7], row[11] = "open", str(line.open_minutes), ""
    return row


def _csv_total(row: str, start: datetime | None, unit: str, entries: int, net: Decimal) -> list:
    period = (
        ["", ""] if start is None else [start.isoformat(), (start + UNIT_LENGTH[unit]).isoformat()]
    )
    return [row, *period, "", "", "", "", str(entries), str(to_money(net)), "", "", ""]


def statement_csv_rows(statement: Statement, opened: Sequence[Section] = ()) -> Iterator[list[str]]:
    """The statement's lines as CSV rows, newest first, a `period_total` row after each day
    (or hour) and a `total` row of the ledger at the end; streamed, so any size is fine. The
    open accruals come first as `open` rows, outside the totals (not ledger rows yet)."""
    yield CSV_HEADER
    for section in opened:
        yield from (_csv_open(line) for line in section.lines)
    unit, row_unit = SECTION_UNIT[statement.group], ROW_UNIT[statement.group]
    section, net, entries = None, ZERO, 0
    total, total_entries = ZERO, 0
    for line in statement:
        if section is not None and line.section != section:
            yield _csv_total("period_total", section, unit, entries, net)
            net, entries = ZERO, 0
        section = line.section
        net, entries = net + line.amount, entries + line.entries
        total, total_entries = total + line.amount, total_entries + line.entries
        yield _csv_line(line, row_unit)
    if section is not None:
        yield _csv_total("period_total", section, unit, entries, net)
    yield _csv_total("total", None, unit, total_entries, total)
