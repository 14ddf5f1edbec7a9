"""`python manage.py sweep_jobs`: time out overdue serverless jobs and delete expired results,
as the periodic task does."""

from django.core.management.base import BaseCommand

from serverless import services


class Command(BaseCommand):
    help = "Time out serverless jobs past their execution timeout; delete expired results."

    def handle(self, *args, **options) -> None:
        counts = services.sweep_jobs()
        self.stdout.write(f"{counts['timed_out']} timed out, {counts['deleted']} deleted")
