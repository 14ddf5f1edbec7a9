"""`python manage.py seed`: idempotent demo and catalogue data. Each app that has data to seed
provides `<app>/seed.py` with `run(stdout)`; they run in dependency order."""

from importlib import import_module

from django.core.management.base import BaseCommand
from django.db import transaction

SEEDERS = ["teams.seed", "billing.seed", "pods.seed", "referrals.seed"]


class Command(BaseCommand):
    help = "Create the GPU catalogue, data centres, demo machines, templates and a demo login."

    def handle(self, *args, **options):
        for module_name in SEEDERS:
            try:
                module = import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name != module_name:
                    raise
                continue
            with transaction.atomic():
                module.run(self.stdout)
