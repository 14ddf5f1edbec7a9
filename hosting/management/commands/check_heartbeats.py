from django.core.management.base import BaseCommand

from hosting import services


class Command(BaseCommand):
    help = "Machines whose agent went quiet go offline; reliability scores are brought up to date."

    def handle(self, *args, **options) -> None:
        gone = services.check_heartbeats()
        self.stdout.write(f"{gone} machine(s) went offline.")
