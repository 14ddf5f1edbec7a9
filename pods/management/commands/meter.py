"""`python manage.py meter [--until ISO]`: run a metering tick by hand, or catch up."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pods import funds, metering


def parse_until(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--until must be an ISO date and time, not {value!r}") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    if moment > timezone.now():
        raise CommandError("--until cannot be in the future: those minutes have not happened.")
    return moment


class Command(BaseCommand):
    help = "Charge every pod and network volume per whole minute up to now (or --until)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--until", help="charge up to this moment (ISO 8601, UTC if naive)")
        parser.add_argument(
            "--no-enforce", action="store_true", help="skip the low-funds check after charging"
        )

    def handle(self, *args, until: str | None, no_enforce: bool, **options) -> None:
        result = metering.meter(until=parse_until(until) if until else None)
        self.stdout.write(
            f"Metered up to {result.until:%Y-%m-%d %H:%M} UTC: {result.pods} pods, "
            f"{result.volumes} network volumes, {result.entries} charges, "
            f"{-result.total} USD."
        )
        if result.written_off_minutes:
            self.stdout.write(
                f"Wrote off {result.written_off_minutes} pod minutes ({result.written_off} USD) "
                "past the low-funds line of their teams: see Usage write-offs in the admin."
            )
        if not no_enforce:
            stopped = funds.enforce(team_ids=result.team_ids)
            if stopped:
                self.stdout.write(f"Stopped the pods of {len(stopped)} teams short of funds.")
