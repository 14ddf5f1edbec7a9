import pytest

# Session-scoped, so defined once here: a module importing them would get its own instance.
from tests.serverless.worker_cache import seed_worker_venv, worker_venv_cache  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def serverless_pool_connections(asgi_pool):
    """Every serverless test may reach serverless.asgi's pool (see tests/conftest.py)."""


def pytest_collection_modifyitems(items) -> None:
    """Tests seeding a worker venv from the session's cache run last, once test_worker_pods
    has installed it (tests/serverless/worker_cache.py): one pip install per run."""
    items.sort(key=lambda item: "seed_worker_venv" in getattr(item, "fixturenames", ()))
