"""`python manage.py register_worker <endpoint id> [--base-url URL]`: register a worker by hand
and print the variables to start it with (until the autoscaler starts workers as pods)."""

import shlex

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from serverless import services
from serverless.models import Endpoint


class Command(BaseCommand):
    help = "Register a serverless worker for an endpoint; print its RUNPOD_* variables."

    def add_arguments(self, parser) -> None:
        parser.add_argument("endpoint", help="the endpoint's id")
        parser.add_argument("--base-url", default=settings.SITE_URL, help="the console's URL")

    def handle(self, *args, **options) -> None:
        endpoint = Endpoint.objects.filter(public_id=options["endpoint"]).first()
        if endpoint is None:
            raise CommandError(f"No endpoint {options['endpoint']!r}.")
        worker, secret = services.register_worker(actor=None, endpoint=endpoint)
        env = services.worker_env(worker=worker, secret=secret, base_url=options["base_url"])
        for name, value in env.items():
            self.stdout.write(f"export {name}={shlex.quote(value)}")
