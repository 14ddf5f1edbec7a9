"""The log says what needs a look: a 403 or 404 is one INFO line with no traceback, and a
periodic task that did nothing logs only at DEBUG (console/logs.py, settings.LOGGING)."""

import logging
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from pods.metering import floor_minute
from pods.models import Pod
from pods.tasks import meter_task, reconcile_pods_task
from teams.models import Role
from tests.conftest import login
from tests.pods.factories import catalogue, fund, stopped_pod


def request_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "django.request"]


def task_records(caplog, task) -> list[logging.LogRecord]:
    return [r for r in caplog.records if task.name in r.getMessage()]


def test_an_outsiders_404_is_one_info_line(team, charlie, caplog):
    caplog.set_level(logging.INFO)
    url = reverse("members", args=[team.slug])
    assert login(charlie).get(url).status_code == 404
    (record,) = request_records(caplog)
    assert record.levelno == logging.INFO
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert record.getMessage() == f"Not Found: {url}"


def test_a_refused_roles_403_is_one_info_line_without_a_traceback(team, member_with_role, caplog):
    client = member_with_role(Role.BASIC)
    caplog.set_level(logging.INFO)
    assert client.get(reverse("api_keys", args=[team.slug])).status_code == 403
    (record,) = request_records(caplog)
    assert record.levelno == logging.INFO
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert "Forbidden" in record.getMessage()


def test_a_403_or_404_is_silent_when_the_log_is_at_warning(team, charlie, caplog):
    caplog.set_level(logging.WARNING)
    login(charlie).get(reverse("members", args=[team.slug]))
    assert request_records(caplog) == []


def test_a_server_error_still_logs_its_traceback(team, alice, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr("teams.views.render", lambda *args, **kwargs: 1 / 0)
    client = login(alice)
    client.raise_request_exception = False
    assert client.get(reverse("members", args=[team.slug])).status_code == 500
    (record,) = request_records(caplog)
    assert record.levelno == logging.ERROR and record.exc_info


@pytest.mark.django_db
def test_an_idle_periodic_task_logs_nothing_at_info(caplog):
    caplog.set_level(logging.INFO)
    reconcile_pods_task.apply()
    meter_task.apply()
    assert task_records(caplog, reconcile_pods_task) == []
    assert task_records(caplog, meter_task) == []


@pytest.mark.django_db
def test_an_idle_periodic_task_logs_at_debug(caplog):
    caplog.set_level(logging.DEBUG)
    reconcile_pods_task.apply()
    (record,) = task_records(caplog, reconcile_pods_task)
    assert record.levelno == logging.DEBUG and "succeeded" in record.getMessage()


def test_a_periodic_task_that_did_something_logs_it_at_info(team, caplog):
    fund(team, "10")
    pod = stopped_pod(team, catalogue()["machine"], status=Pod.Status.RUNNING)
    # Metered up to two minutes ago: this tick charges those two minutes.
    two_minutes_ago = floor_minute(timezone.now()) - timedelta(minutes=2)
    Pod.objects.filter(pk=pod.pk).update(metered_until=two_minutes_ago)
    caplog.set_level(logging.INFO)
    meter_task.apply()
    (record,) = task_records(caplog, meter_task)
    assert record.levelno == logging.INFO
    assert "'charged': '0.0263" in record.getMessage()  # two minutes of an A40 and its disks
    assert "'teams': 1" in record.getMessage()
