import time

from django.core.management.base import BaseCommand

from pods.lifecycle import reconcile


class Command(BaseCommand):
    help = "Reconcile pods once (or every --every seconds): dead processes, restarts, timers."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0, help="loop with this period")

    def handle(self, *args, every: float = 0, **options):
        while True:
            reconcile()
            if not every:
                return
            time.sleep(every)
