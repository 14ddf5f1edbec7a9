"""The ledger people read: usage per resource per day or hour (UTC), other entries as
themselves, totals per line, per period and overall, drill-down from a day to its hours and
from an hour to the entries it sums; the billing page's recent activity and the CSV alike."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import reports, services
from billing.money import minute_charge
from pods.metering import close_delay, meter
from pods.models import Pod
from tests.conftest import login
from tests.pods.factories import catalogue, fund, posted_by, stopped_pod

RATE = Decimal("0.79")  # an A40's secure price per hour


def span(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(count)]


# Minutes charged: 23:58 and 23:59 on 30 Nov, 00:00 to 00:02 and 01:00, 01:01 on 1 Dec.
LATE = span(datetime(2026, 11, 30, 23, 58, tzinfo=UTC), 2)
NIGHT = span(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), 3)
ONE = span(datetime(2026, 12, 1, 1, 0, tzinfo=UTC), 2)


def cost(minutes: list[datetime]) -> Decimal:
    return sum((minute_charge(RATE, minute.minute) for minute in minutes), Decimal(0))


def charge_minutes(team, pod: str, minutes: list[datetime], posted: datetime | None = None):
    """Per-minute compute rows as metering wrote them before hourly roll-ups: key ending in the
    minute (UTC), posted when the minute is over (or all at `posted`, as a catch-up does)."""
    with time_machine.travel(posted or minutes[0], tick=False) as clock:
        for minute in minutes:
            if posted is None:
                clock.move_to(minute + timedelta(seconds=65))
            services.post_entry(
                team=team,
                amount=-minute_charge(RATE, minute.minute),
                kind="usage_compute",
                idempotency_key=f"pod:{pod}:compute:{minute:%Y%m%d%H%M}",
                description=f"Compute, pod {pod}",
                source_type="pod",
                source_id=pod,
            )


@pytest.fixture
def used(team):
    with time_machine.travel(LATE[0] - timedelta(hours=1), tick=False):
        services.post_entry(
            team=team, amount="50", kind="top_up", idempotency_key="t1", description="Card top-up"
        )
    charge_minutes(team, "trainer", LATE + NIGHT + ONE)
    with time_machine.travel(datetime(2026, 12, 1, 0, 30, tzinfo=UTC), tick=False):
        services.adjust_balance(team=team, amount="5", reason="Goodwill", actor=None)
    return team


def statement_lines(client, team, **query) -> list[reports.LedgerLine]:
    response = client.get(reverse("billing_ledger", args=[team.slug]), query)
    assert response.status_code == 200
    return [line for section in response.context["sections"] for line in section.lines]


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_it_sums_usage_per_resource_per_day_and_lists_other_entries(used, alice):
    lines = statement_lines(login(alice), used)
    described = [(line.period.date().isoformat(), line.kind, line.entries) for line in lines]
    # Minute 23:59 is posted after midnight and still belongs to 30 Nov.
    assert described == [
        ("2026-12-01", "usage_compute", 5),
        ("2026-12-01", "adjustment", 1),
        ("2026-11-30", "usage_compute", 2),
        ("2026-11-30", "top_up", 1),
    ]
    assert lines[0].amount == -cost(NIGHT + ONE)
    assert lines[2].amount == -cost(LATE)
    assert lines[1].amount == Decimal("5") and lines[1].balance_after is not None
    assert lines[3].entry_id is not None and lines[0].entry_id is None


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_it_totals_each_day_and_the_whole_statement(used, alice):
    response = login(alice).get(reverse("billing_ledger", args=[used.slug]))
    today, yesterday = response.context["sections"]
    assert today.usage == -cost(NIGHT + ONE)
    assert today.credits == Decimal("5")
    assert today.net == today.usage + Decimal("5")
    assert yesterday.net == Decimal("50") - cost(LATE)
    assert response.context["total"] == Decimal("55") - cost(LATE + NIGHT + ONE)
    assert response.context["total"] == services.get_account(used).balance


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_a_day_opens_its_hours_and_an_hour_its_entries(used, alice):
    client = login(alice)
    day = statement_lines(client, used)[0]
    hours = statement_lines(client, used, **dict(parse_qsl(day.drill)))
    assert [(line.period.hour, line.entries) for line in hours] == [(1, 2), (0, 3)]
    assert sum(line.amount for line in hours) == day.amount
    assert hours[1].amount == -cost(NIGHT)
    response = client.get(reverse("billing_ledger", args=[used.slug]) + "?" + hours[1].drill)
    minutes = [line for section in response.context["sections"] for line in section.lines]
    assert response.context["page"].paginator.count == 3
    assert response.context["total"] == -cost(NIGHT)
    assert all(line.entries == 1 and line.period.hour == 0 for line in minutes)


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_it_groups_per_hour_with_hour_totals(used, alice):
    response = login(alice).get(reverse("billing_ledger", args=[used.slug]), {"group": "hour"})
    sections = response.context["sections"]
    assert [section.start.strftime("%d %H") for section in sections] == [
        "01 01",
        "01 00",
        "30 23",
        "30 22",
    ]
    assert sections[1].net == Decimal("5") - cost(NIGHT)  # the goodwill credit and usage
    assert sections[2].usage == -cost(LATE)


def test_a_catch_up_is_grouped_by_the_minutes_it_charges_not_when_it_ran(team, alice):
    posted = datetime(2026, 12, 2, 9, 0, 30, tzinfo=UTC)
    charge_minutes(team, "late", span(datetime(2026, 12, 1, 22, 58, tzinfo=UTC), 4), posted=posted)
    with time_machine.travel(posted, tick=False):
        lines = statement_lines(login(alice), team, group="hour")
    assert [(line.period.strftime("%d %H"), line.entries) for line in lines] == [
        ("01 23", 2),
        ("01 22", 2),
    ]


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_recent_activity_is_grouped_and_never_shows_zero(used, alice):
    # A 1 GB network volume costs $0.0000016 a minute.
    for minute in range(3):
        services.post_entry(
            team=used,
            amount="-0.0000016204",
            kind="usage_storage",
            idempotency_key=f"network_volume:tiny:storage:20261201013{minute}",
            description="Network volume tiny",
            source_type="network_volume",
            source_id="tiny",
        )
    response = login(alice).get(reverse("billing", args=[used.slug]))
    html = response.content.decode()
    lines = [line for section in response.context["sections"] for line in section.lines]
    assert len(lines) == 5  # two days of the pod, the volume, a top-up, an adjustment
    assert html.count("Network volume tiny") == 1
    assert "-$0.000005" in html
    assert not re.search(r"\$0\.0000(?!\d)", html)


def read_csv(client, team, **query) -> list[dict]:
    response = client.get(reverse("billing_ledger_csv", args=[team.slug]), query)
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_the_csv_has_the_same_lines_with_period_totals_and_a_total(used, alice):
    rows = read_csv(login(alice), used, group="hour")
    assert [row["row"] for row in rows[:5]] == [
        "usage",
        "period_total",
        "entry",
        "usage",
        "period_total",
    ]
    usage = [row for row in rows if row["row"] == "usage"]
    assert [row["period_start"] for row in usage][:2] == [
        "2026-12-01T01:00:00+00:00",
        "2026-12-01T00:00:00+00:00",
    ]
    assert usage[1]["period_end"] == "2026-12-01T01:00:00+00:00"
    assert Decimal(usage[1]["amount_usd"]) == -cost(NIGHT) and usage[1]["entries"] == "3"
    totals = [row for row in rows if row["row"] == "period_total"]
    lines = [row for row in rows if row["row"] in ("usage", "entry")]
    assert sum(Decimal(r["amount_usd"]) for r in totals) == sum(
        Decimal(r["amount_usd"]) for r in lines
    )
    assert rows[-1]["row"] == "total"
    assert Decimal(rows[-1]["amount_usd"]) == services.get_account(used).balance
    assert rows[-1]["entries"] == "9"


@time_machine.travel(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), tick=False)
def test_the_csv_groups_per_day_by_default_and_defuses_formulas(used, alice):
    services.post_entry(
        team=used,
        amount="-1",
        kind="usage_compute",
        idempotency_key="pod:evil:compute:202612010100",
        description='=HYPERLINK("http://127.0.0.1/")',
        source_type="pod",
        source_id="evil",
    )
    rows = read_csv(login(alice), used)
    usage = [row for row in rows if row["row"] == "usage"]
    assert len(usage) == 3 and usage[0]["period_end"] == "2026-12-02T00:00:00+00:00"
    assert usage[0]["description"].startswith("'=")


def test_it_pages_the_statement(team, alice, settings):
    with time_machine.travel(datetime(2026, 12, 1, tzinfo=UTC), tick=False) as clock:
        for i in range(55):
            services.adjust_balance(team=team, amount="1", reason=f"credit {i}", actor=None)
            clock.shift(timedelta(hours=1))
        client = login(alice)
        url = reverse("billing_ledger", args=[team.slug])
        first = client.get(url, {"group": "hour"}).context["page"]
        second = client.get(url, {"group": "hour", "page": 2}).context["page"]
        past = client.get(url, {"group": "hour", "page": 99}).context["page"]
        odd = client.get(url, {"group": "hour", "page": "x"}).context["page"]
    assert first.paginator.count == 55 and first.paginator.num_pages == 2
    assert len(second.object_list) == 5
    assert second.object_list[-1].description == "credit 0"
    assert past.number == 2 and past.object_list == second.object_list
    assert odd.number == 1 and odd.object_list == first.object_list


def count_queries(client, url: str, query: dict) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, query)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(context.captured_queries)


# Session, user, membership; the page (its count read with it), period totals, the total; the open
# accruals (pods': a query in a savepoint with JIT off, pods.metering; serverless workers': one
# query, serverless.metering): the same for any number of rows.
@pytest.mark.parametrize(
    ("name", "query", "most"),
    [
        ("billing_ledger", {}, 16),
        ("billing_ledger", {"group": "hour"}, 16),
        ("billing_ledger", {"group": "entry"}, 16),
        ("billing_ledger", {"group": "hour", "resource": "pod:p0", "since": "2026-12-01"}, 16),
        ("billing_ledger_csv", {"group": "hour"}, 12),
        ("billing", {}, 23),
    ],
)
def test_the_statement_runs_the_same_queries_for_few_and_many_resources(
    name, query, most, team, alice
):
    client = login(alice)
    url = reverse(name, args=[team.slug])
    with time_machine.travel(datetime(2026, 12, 1, 3, 0, tzinfo=UTC), tick=False):
        charge_minutes(team, "p0", span(datetime(2026, 12, 1, 1, 58, tzinfo=UTC), 2))
        few = count_queries(client, url, query)
        for pod in range(1, 4):
            charge_minutes(team, f"p{pod}", span(datetime(2026, 12, 1, 0, 59, tzinfo=UTC), 2))
        many = count_queries(client, url, query)
    assert many == few, f"{name} {query}: {few} queries, then {many}"
    assert many <= most


def test_an_outsider_gets_404_and_a_dev_403(team, charlie, member_with_role):
    dev = member_with_role("dev")
    for name in ("billing_ledger", "billing_ledger_csv"):
        url = reverse(name, args=[team.slug])
        assert login(charlie).get(url, {"group": "hour"}).status_code == 404
        assert dev.get(url, {"group": "hour"}).status_code == 403


def test_another_teams_resource_shows_nothing(team, alice, charlie):
    theirs = charlie.memberships.get().team
    charge_minutes(theirs, "secret", span(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), 2))
    query = {"group": "entry", "resource": "pod:secret", "hour": "2026-12-01T00:00"}
    assert statement_lines(login(alice), team, **query) == []
    rows = read_csv(login(alice), team, **query)
    assert [row["row"] for row in rows] == ["total"] and rows[0]["entries"] == "0"


def test_a_metered_pod_reads_per_hour_at_exactly_its_rate(team, alice):
    """Whatever rows metering writes (per minute before the roll-up, per hour after), two hours
    of an A40 read as two hour lines of exactly $0.79 and one day line of $1.58."""
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with time_machine.travel(start - timedelta(seconds=30), tick=False):
        parts = catalogue()
        fund(team, "100")
        pod = stopped_pod(team, parts["machine"], name="trainer", status=Pod.Status.RUNNING)
        Pod.objects.filter(pk=pod.pk).update(metered_until=start)
    client = login(alice)
    until = posted_by(start + timedelta(hours=2), team)  # the minutes after 12:00 are open
    with time_machine.travel(until + timedelta(seconds=5), tick=False):
        meter(until=until)
        hours = posted_lines(client, team, group="hour", kind="usage_compute")
        days = posted_lines(client, team, kind="usage_compute")
        entries = client.get(reverse("billing_ledger", args=[team.slug]) + "?" + hours[0].drill)
    assert [(line.period.hour, line.amount) for line in hours] == [(11, -RATE), (10, -RATE)]
    assert [line.amount for line in days] == [-2 * RATE]
    assert entries.context["total"] == -RATE


def posted_lines(client, team, **query) -> list[reports.LedgerLine]:
    response = client.get(reverse("billing_ledger", args=[team.slug]), query)
    assert response.status_code == 200
    sections = response.context["sections"]
    return [line for section in sections if not section.is_open for line in section.lines]


def test_the_open_hour_shows_what_is_charged_and_not_posted_yet(team, alice):
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with time_machine.travel(start - timedelta(seconds=30), tick=False):
        parts = catalogue()
        fund(team, "100")
        pod = stopped_pod(team, parts["machine"], name="trainer", status=Pod.Status.RUNNING)
        Pod.objects.filter(pk=pod.pk).update(metered_until=start)
    client = login(alice)
    # Half an hour into the next hour, or later if the team's hour 10:00 closes later.
    minutes = max(30, close_delay(team.pk) // timedelta(minutes=1))
    until = start + timedelta(hours=1, minutes=minutes)
    open_cost = cost(span(start + timedelta(hours=1), minutes))
    with time_machine.travel(until + timedelta(seconds=5), tick=False):
        meter(until=until)
        page = client.get(reverse("billing_ledger", args=[team.slug]), {"kind": "usage_compute"})
        overview = client.get(reverse("billing", args=[team.slug]))
        rows = read_csv(client, team, kind="usage_compute")
        url = reverse("billing_ledger", args=[team.slug])
        in_hour = client.get(url, {"group": "entry", "hour": "2026-12-01T11:00:30.5"})
        elsewhere = client.get(url, {"resource": "pod:other", "since": "2026-12-01"})
    opened, posted = page.context["sections"]
    assert opened.is_open and opened.start == start + timedelta(hours=1)
    [line] = opened.lines
    assert (line.resource, line.open_minutes, line.amount) == (
        f"pod:{pod.public_id}",
        minutes,
        -open_cost,
    )
    assert [line.amount for line in posted.lines] == [-RATE]
    assert page.context["total"] == -RATE  # the ledger holds the closed hour only
    assert overview.context["sections"][0].is_open
    assert "charged, posted when the hour closes" in overview.content.decode()
    # The closed hour is one rolled-up row.
    assert [(row["row"], row["entries"]) for row in rows] == [
        ("open", str(minutes)),
        ("usage", "1"),
        ("period_total", "1"),
        ("total", "1"),
    ]
    assert Decimal(rows[0]["amount_usd"]) == -open_cost and rows[0]["posted_at"] == ""
    assert [section.is_open for section in in_hour.context["sections"]] == [True]
    assert elsewhere.context["sections"] == []
    assert Decimal(rows[-1]["amount_usd"]) == -RATE
