from django.core.management.base import BaseCommand

from hosting import services


class Command(BaseCommand):
    help = "Unlist machines 4 days before maintenance, remind renters a day before, relist after."

    def handle(self, *args, **options) -> None:
        self.stdout.write(str(services.maintenance_sweep()))
