"""The embedded demo `make run` starts (SQLite, no Redis, DEBUG): migrate, seed, and a metering
tick with its ledger check, each in a subprocess configured as scripts/run.sh configures it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

METER_A_POD = """
from datetime import timedelta
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone
from billing.models import LedgerEntry
from pods.metering import floor_minute, meter
from pods.models import Machine, Pod
from teams.models import Team

team = Team.objects.get(memberships__user__email="demo@example.com")
machine = Machine.objects.filter(gpu_count__gt=0).first()
start = floor_minute(timezone.now()) - timedelta(hours=1)
Pod.objects.create(team=team, name="demo", machine=machine, cloud_type=machine.cloud_type,
    gpu_type=machine.gpu_type, gpu_count=1, requested_gpu_count=1, vcpu=4, memory_gb=8,
    image="img", container_disk_gb=0, volume_gb=0, status="running", metered_until=start)
meter(until=start + timedelta(hours=1))
assert meter(until=start + timedelta(hours=1)).entries == 0
total = LedgerEntry.objects.filter(kind="usage_compute").aggregate(total=Sum("amount"))["total"]
assert -total == machine.gpu_type.price(machine.cloud_type), total
call_command("check_ledger")
print("metered", -total)
"""


def manage(*args: str, data_dir: Path) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(DEBUG="1", DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="console.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_embedded_demo_migrates_seeds_and_meters_on_sqlite(tmp_path):
    manage("migrate", "--noinput", "-v", "0", data_dir=tmp_path)
    assert "Demo login: demo@example.com" in manage("seed", data_dir=tmp_path)
    assert (tmp_path / "console.sqlite3").exists()
    assert "metered" in manage("shell", "-c", METER_A_POD, data_dir=tmp_path)
    assert "Ledger OK" in manage("check_ledger", data_dir=tmp_path)
