"""Logging filters (settings.LOGGING): keep the log for what needs a look.

- 403 and 404 are the console's ordinary answers to outsiders and to roles that may not do
  something. Django logs them as WARNING, PermissionDenied with its whole traceback; here they
  are one INFO line each.
- Periodic tasks run every few seconds (reconcile every 5 s). Celery's "received", "succeeded"
  and beat's "sending due task" lines for them are DEBUG; a periodic task that did something
  returns it, and its "succeeded ...: <what it did>" line stays INFO.
"""

import logging

from django.conf import settings

QUIET_STATUSES = frozenset({403, 404})
# How celery writes a return value of None, 0, False or an empty collection.
NOTHING_DONE = frozenset({"None", "0", "False", "[]", "{}", "()", "''", "set()"})


def _demote(record: logging.LogRecord, level: int) -> None:
    record.levelno = level
    record.levelname = logging.getLevelName(level)


def _enabled(record: logging.LogRecord) -> bool:
    return logging.getLogger(record.name).isEnabledFor(record.levelno)


class QuietClientErrors(logging.Filter):
    """On django.request: 403/404 as one INFO line, without exc_info."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) in QUIET_STATUSES:
            _demote(record, logging.INFO)
            record.exc_info = record.exc_text = None
            return _enabled(record)
        return True


def periodic_task_names() -> frozenset[str]:
    return frozenset(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())


def _is_idle_periodic(record: logging.LogRecord) -> bool:
    if record.name == "celery.beat":
        return str(record.msg).startswith("Scheduler: Sending due task")
    data = getattr(record, "data", None)
    if not isinstance(data, dict) or data.get("name") not in periodic_task_names():
        return False
    # "received" lines carry no return value; "succeeded" lines say what the task did.
    return "return_value" not in data or str(data["return_value"]) in NOTHING_DONE


class QuietPeriodicTasks(logging.Filter):
    """On celery.worker.strategy, celery.app.trace and celery.beat: idle runs of periodic
    tasks at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_idle_periodic(record):
            _demote(record, logging.DEBUG)
            return _enabled(record)
        return True
