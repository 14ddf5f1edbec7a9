"""python manage.py grant_credit --team SLUG --amount 25 --reason "Conference voucher" """

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from billing.money import format_usd
from billing.services import adjust_balance
from teams.models import Team


class Command(BaseCommand):
    help = "Add (or with a negative amount, remove) credit as a staff adjustment entry."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--amount", required=True, help="dollars, e.g. 25 or -3.50")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--key", default="", help="idempotency key, to make reruns safe")

    def handle(self, *args, team: str, amount: str, reason: str, key: str, **options) -> None:
        target = Team.objects.filter(slug=team).first()
        if target is None:
            raise CommandError(f"No team with slug {team!r}")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise CommandError(f"Not an amount: {amount!r}")
        try:
            entry = adjust_balance(team=target, amount=value, reason=reason, actor=None, key=key)
        except ValueError as exc:
            raise CommandError(str(exc))
        balance = format_usd(entry.balance_after)
        self.stdout.write(f"Posted {format_usd(entry.amount)} to {target.slug}; balance {balance}.")
