"""`python manage.py autoscale`: one autoscaler pass over the serverless endpoints, as the
periodic task runs it (start, replace, retire workers; re-queue a dead worker's jobs)."""

from django.core.management.base import BaseCommand

from serverless import autoscaler


class Command(BaseCommand):
    help = "Run one serverless autoscaler pass and print what it did."

    def handle(self, *args, **options) -> None:
        counts = autoscaler.autoscale()
        self.stdout.write(", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "idle")
