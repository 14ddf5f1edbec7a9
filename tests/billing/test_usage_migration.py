"""The cut-over to rolled-up usage (billing 0006, pods 0005): per-minute rows written the old
way stay as they are, no balance changes, and the first tick after it charges each resource
from its own mark, each minute once."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing.models import BillingAccount, LedgerEntry
from billing.money import period_share
from pods.metering import meter

BEFORE = [("billing", "0005_low_funds_and_write_offs"), ("pods", "0004_template_runtimes")]
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
FIRST = int(T0.timestamp()) // 60


def migrate(targets) -> object:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def old_catalogue(apps) -> dict:
    """The A40 ($0.79/h) and a machine with it, through the models of the old schema."""
    DataCenter = apps.get_model("pods", "DataCenter")
    GpuType = apps.get_model("pods", "GpuType")
    Machine = apps.get_model("pods", "Machine")
    dc = DataCenter.objects.create(id="EU-RO-1", name="Bucharest", country="RO")
    a40 = GpuType.objects.create(
        id="NVIDIA A40", display_name="A40", memory_gb=48, secure_price=Decimal("0.79"),
        community_price=Decimal("0.47"), min_bid=Decimal("0.28"),
    )  # fmt: skip
    machine = Machine.objects.create(
        name="a40-box", data_center_id=dc.pk, cloud_type="SECURE", gpu_type_id=a40.pk,
        gpu_count=4, vcpu=32, memory_gb=128, disk_gb=4000,
    )  # fmt: skip
    return {"a40": a40, "machine": machine}


def old_style_team(apps, parts, *, slug: str, minutes: int) -> None:
    """A team whose running A40 pod was metered the old way: a row per minute."""
    Team = apps.get_model("teams", "Team")
    Pod = apps.get_model("pods", "Pod")
    Entry = apps.get_model("billing", "LedgerEntry")
    Account = apps.get_model("billing", "BillingAccount")
    team = Team.objects.create(name=slug, slug=slug, is_personal=False)
    pod = Pod.objects.create(
        team_id=team.pk, machine_id=parts["machine"].pk, cloud_type="SECURE",
        gpu_type_id=parts["a40"].pk, gpu_count=1, requested_gpu_count=1, vcpu=8,
        memory_gb=32, image="img", container_disk_gb=0, volume_gb=0, status="running",
        name=f"{slug}-pod", metered_until=T0 + timedelta(minutes=minutes),
    )  # fmt: skip
    balance = Decimal("10")
    Entry.objects.create(
        team_id=team.pk, amount=balance, balance_after=balance, kind="adjustment",
        idempotency_key=f"grant:{slug}", description="credit",
    )  # fmt: skip
    for m in range(minutes):
        share = period_share(Decimal("0.79"), FIRST + m, 60)
        balance -= share
        Entry.objects.create(
            team_id=team.pk, amount=-share, balance_after=balance, kind="usage_compute",
            idempotency_key=f"pod:{pod.public_id}:compute:{m}", description="Compute",
            source_type="pod", source_id=pod.public_id,
        )  # fmt: skip
    Account.objects.create(team_id=team.pk, balance=balance)


@pytest.mark.django_db(transaction=True)
def test_the_cut_over_keeps_every_balance_and_charges_each_minute_once():
    old_apps = migrate(BEFORE)
    parts = old_catalogue(old_apps)
    old_style_team(old_apps, parts, slug="early", minutes=20)
    old_style_team(old_apps, parts, slug="late", minutes=45)
    balances = dict(old_apps.get_model("billing", "BillingAccount").objects.values_list(
        "team__slug", "balance"
    ))  # fmt: skip
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    after = dict(BillingAccount.objects.values_list("team__slug", "balance"))
    assert after == balances
    call_command("check_ledger")
    meter(until=T0 + timedelta(minutes=70))
    call_command("check_ledger")
    for slug in ("early", "late"):
        charged = -LedgerEntry.objects.filter(team__slug=slug, kind="usage_compute").total()
        accrued = -BillingAccount.objects.get(team__slug=slug).usage_accrued
        # Every minute up to 70 once: $0.79 for the first hour and 10 shares of the second.
        assert charged + accrued == Decimal("0.79") + sum(
            period_share(Decimal("0.79"), FIRST + m, 60) for m in range(60, 70)
        )
    old_rows = LedgerEntry.objects.filter(kind="usage_compute", period_start=None).count()
    assert old_rows == 20 + 45  # kept as they were
