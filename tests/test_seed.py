from django.core.management import call_command

from billing.models import BillingAccount
from pods.models import GpuType, PodTemplate
from teams.models import User


def test_it_seeds_once_and_can_run_again(db, settings):
    settings.DEBUG = True
    call_command("seed")
    call_command("seed")
    user = User.objects.get(email=settings.DEMO_USER_EMAIL)
    assert user.check_password(settings.DEMO_USER_PASSWORD)
    assert GpuType.objects.count() == 30
    assert PodTemplate.objects.filter(team=None).exists()
    account = BillingAccount.objects.get(team__memberships__user=user)
    assert account.balance == 100
    call_command("check_ledger")


def test_it_grants_no_demo_credit_outside_debug(db, settings):
    settings.DEBUG = False
    call_command("seed")
    assert not BillingAccount.objects.filter(balance__gt=0).exists()
