"""Real threads with their own PostgreSQL connections against one team's account."""

import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from billing import services
from billing.models import LedgerEntry
from teams.models import Team


def run_in_threads(target, args_list) -> list:
    results: list = [None] * len(args_list)
    barrier = threading.Barrier(len(args_list))

    def worker(index, args):
        try:
            barrier.wait()
            results[index] = target(*args)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(args_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_it_keeps_balance_equal_to_the_ledger_under_20_concurrent_posts():
    team = Team.objects.create(name="Busy", slug="busy", is_personal=False)
    services.post_entry(
        team=team, amount=Decimal("100"), kind="top_up", idempotency_key="seed", description="s"
    )

    def post(i):
        if i % 2:
            amount, kind = Decimal("-1.3333333333"), "usage_compute"
        else:
            amount, kind = Decimal("2.5"), "top_up"
        return services.post_entry(
            team=Team.objects.get(pk=team.pk),
            amount=amount,
            kind=kind,
            idempotency_key=f"op:{i}",
            description="concurrent",
        )

    results = run_in_threads(post, [(i,) for i in range(20)])
    assert all(results)
    expected = Decimal("100") + 10 * Decimal("2.5") - 10 * Decimal("1.3333333333")
    assert services.get_account(team).balance == expected
    assert LedgerEntry.objects.for_team(team).total() == expected
    balances = sorted(LedgerEntry.objects.values_list("balance_after", flat=True))
    assert len(set(balances)) == 21  # each post saw the previous one: no lost update
    call_command("check_ledger")


@pytest.mark.django_db(transaction=True)
def test_it_posts_one_key_once_from_8_threads():
    team = Team.objects.create(name="Race", slug="race", is_personal=False)

    def post():
        return services.post_entry(
            team=Team.objects.get(pk=team.pk),
            amount=Decimal("25"),
            kind="top_up",
            idempotency_key="stripe:pi:same",
            description="race",
        )

    results = run_in_threads(post, [()] * 8)
    assert sum(1 for r in results if r is not None) == 1
    assert services.get_account(team).balance == Decimal("25")
    call_command("check_ledger")
