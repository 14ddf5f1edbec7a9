import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from console.celery import app as celery_app
from pods.models import Pod
from pods.runtime import get_backend
from tests.billing.conftest import localstripe, stripe_emulator  # noqa: F401 (shared fixtures)
from tests.pods.factories import catalogue


@pytest.fixture(autouse=True)
def pods_settings(settings):
    """Eager Celery, the in-memory channel layer, and pod data under a fresh DATA_DIR: in the
    system's temporary directory, not pytest's tmp_path, whose parent pytest keeps private
    (0700) while pod uids must pass through every parent of their directories."""
    data_dir = Path(tempfile.mkdtemp(prefix="pod-data-"))
    settings.DATA_DIR = data_dir
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield settings
    celery_app.conf.task_always_eager = eager
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def parts(db):
    return catalogue()


@pytest.fixture
def twelve_dollar_gpu(db):
    """The catalogue with the A40 at $12/h on Secure Cloud: $0.20 a minute."""
    parts = catalogue()
    parts["a40"].secure_price = Decimal("12")
    parts["a40"].save()
    return parts


@pytest.fixture
def reap(db):
    """Kill whatever pod processes a test left behind, so none outlive it."""
    yield
    for pod in Pod.objects.exclude(runtime_handle={}):
        get_backend("process").stop(pod.runtime_handle, grace_seconds=0.5)
