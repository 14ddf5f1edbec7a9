import pytest

from console.celery import app as celery_app
from pods.models import Pod
from pods.runtime import get_backend
from tests.billing.conftest import localstripe, stripe_emulator  # noqa: F401 (shared fixtures)
from tests.pods.factories import catalogue


@pytest.fixture(autouse=True)
def pods_settings(settings, tmp_path):
    """Eager Celery, the in-memory channel layer, and pod data under a fresh DATA_DIR."""
    settings.DATA_DIR = tmp_path
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield settings
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def parts(db):
    return catalogue()


@pytest.fixture
def reap(db):
    """Kill whatever pod processes a test left behind, so none outlive it."""
    yield
    for pod in Pod.objects.exclude(runtime_handle={}):
        get_backend("process").stop(pod.runtime_handle, grace_seconds=0.5)
