from decimal import Decimal

from django.conf import settings

from billing.models import LedgerEntry
from billing.services import adjust_balance
from teams.models import Team

DEMO_CREDIT = Decimal("100")
DEMO_CREDIT_KEY = "seed:demo-credit"


def run(stdout) -> None:
    """Demo credit for the demo login's personal account, so a newcomer can deploy at once.
    Only in DEBUG (the embedded demo); posted once, as a staff adjustment through the ledger."""
    if not settings.DEBUG or LedgerEntry.objects.filter(idempotency_key=DEMO_CREDIT_KEY).exists():
        return
    team = Team.objects.filter(
        is_personal=True, memberships__user__email=settings.DEMO_USER_EMAIL
    ).first()
    if team is None:
        return
    adjust_balance(
        team=team, amount=DEMO_CREDIT, reason="Demo credit", actor=None, key=DEMO_CREDIT_KEY
    )
    stdout.write(f"Demo credit: ${DEMO_CREDIT} on {team.name}")
