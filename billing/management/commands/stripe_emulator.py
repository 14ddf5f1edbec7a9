"""Run the local Stripe emulator in the foreground and point its webhooks at this console.

    python manage.py stripe_emulator --port 8420

The web server must run with STRIPE_API_BASE=http://127.0.0.1:8420 (and no real Stripe keys)
and the same DATA_DIR: the emulator's state is kept in DATA_DIR/localstripe.pickle, and its
webhooks are signed with this installation's secret, DATA_DIR/stripe-webhook-secret (made once,
mode 0600), which the web server verifies with. STRIPE_WEBHOOK_SECRET, if set, is used instead.
"""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from billing import emulator, stripe_gateway


class Command(BaseCommand):
    help = "Run localstripe and register its webhook to /billing/stripe/webhook/."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8420)
        parser.add_argument(
            "--webhook-url",
            default="",
            help="where the emulator posts events (default: SITE_URL + the webhook path)",
        )
        parser.add_argument("--fresh", action="store_true", help="start with empty state")

    def handle(self, *args, port: int, webhook_url: str, fresh: bool, **options) -> None:
        if settings.STRIPE_SECRET_KEY and not settings.STRIPE_SECRET_KEY.startswith("sk_test_"):
            raise CommandError("Live Stripe keys are set; the emulator is for development only.")
        state = settings.DATA_DIR / "localstripe.pickle"
        if fresh:
            state.unlink(missing_ok=True)
        base = f"http://127.0.0.1:{port}"
        url = webhook_url or settings.SITE_URL + reverse("stripe_webhook")
        process = emulator.start(port, state=state, log=None)
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        try:
            emulator.wait_until_up(base, process=process)
            emulator.register_webhook(base, url=url, secret=self._webhook_secret())
            self.stdout.write(
                f"Stripe emulator on {base}; webhooks -> {url}\n"
                f"Run the console with STRIPE_API_BASE={base}"
            )
            process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)

    def _webhook_secret(self) -> str:
        if settings.STRIPE_WEBHOOK_SECRET:
            return settings.STRIPE_WEBHOOK_SECRET
        return stripe_gateway.installation_webhook_secret(settings.DATA_DIR)
