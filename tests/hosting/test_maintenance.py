"""Maintenance: at least 7 days ahead, unlisted exactly 4 days before, renters e-mailed at
booking and a day before, listed again after; immediate only on an empty machine; frequent
bookings flagged to staff."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse

from hosting import services
from hosting.models import Maintenance
from pods.models import Machine, Pod
from teams.models import AuditEvent
from tests.conftest import login
from tests.pods.factories import stopped_pod
from tests.pods.test_machine_admin import staff

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def listed_now(hosted) -> bool:
    return Machine.objects.get(pk=hosted.machine_id).is_listed


def book(hosted, days: float, hours: int = 4) -> Maintenance:
    start = T0 + timedelta(days=days)
    return services.book_maintenance(
        actor=None, hosted=hosted, starts_at=start, ends_at=start + timedelta(hours=hours)
    )


@time_machine.travel(T0, tick=False)
def test_six_days_ahead_is_refused_with_a_clear_message(alice, listed):
    start = T0 + timedelta(days=6)
    url = reverse("hosting_maintenance", args=[listed.team.slug, listed.public_id])
    data = {"starts_at": f"{start:%Y-%m-%d %H:%M}", "ends_at": f"{start:%Y-%m-%d} 18:00"}
    response = login(alice).post(url, data)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Maintenance must be booked at least 7 days ahead: the earliest")
    assert "2026-11-09 10:00 UTC" in message
    assert not Maintenance.objects.exists()
    with pytest.raises(services.HostingError, match="at least 7 days ahead"):
        book(listed, 7 - 1 / 86400)


def test_seven_days_ahead_is_booked_and_unlisted_exactly_four_days_before(
    listed, charlie, django_capture_on_commit_callbacks
):
    renter = charlie.memberships.get().team
    stopped_pod(renter, listed.machine)
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        maintenance = book(listed, 7)
    [booked] = mail.outbox
    assert booked.to == ["charlie@example.com"] and "Maintenance on machine" in booked.subject
    unlist_at = maintenance.starts_at - timedelta(days=4)
    services.maintenance_sweep(now=unlist_at - timedelta(seconds=1))
    assert listed_now(listed)
    services.maintenance_sweep(now=unlist_at)
    assert not listed_now(listed)
    assert len(mail.outbox) == 1
    services.maintenance_sweep(now=maintenance.starts_at - timedelta(days=1))
    assert len(mail.outbox) == 2 and "within a day" in mail.outbox[1].subject
    services.maintenance_sweep(now=maintenance.starts_at)  # nothing twice
    assert len(mail.outbox) == 2 and not listed_now(listed)
    services.maintenance_sweep(now=maintenance.ends_at)
    assert listed_now(listed)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"hosting.maintenance_booked", "hosting.unlisted_for_maintenance"} <= actions


def test_the_form_books_seven_days_ahead(alice, listed):
    with time_machine.travel(T0, tick=False):
        start = T0 + timedelta(days=7)
        url = reverse("hosting_maintenance", args=[listed.team.slug, listed.public_id])
        data = {"starts_at": f"{start:%Y-%m-%d %H:%M}", "ends_at": f"{start:%Y-%m-%d} 14:00"}
        response = login(alice).post(url, data)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Maintenance booked."]
    assert Maintenance.objects.get().starts_at == start


def test_immediate_maintenance_only_on_an_empty_machine(listed, team):
    pod = stopped_pod(team, listed.machine)
    with pytest.raises(services.HostingError, match="needs an empty machine"):
        services.book_immediate_maintenance(actor=None, hosted=listed, hours=2)
    pod.status = Pod.Status.TERMINATED
    pod.save()
    services.book_immediate_maintenance(actor=None, hosted=listed, hours=2)
    assert not listed_now(listed)


def test_frequent_maintenance_is_flagged_to_staff(listed):
    with time_machine.travel(T0, tick=False):
        for week in range(3):
            book(listed, 7 + week * 2)
    flags = [
        event.details["frequent"]
        for event in AuditEvent.objects.filter(action="hosting.maintenance_booked").order_by("pk")
    ]
    assert flags == [False, False, True]
    with time_machine.travel(T0, tick=False):
        page = staff().get(reverse("admin:hosting_hostedmachine_changelist"))
    assert b"icon-yes.svg" in page.content
