import pytest


@pytest.fixture(scope="session", autouse=True)
def serverless_pool_connections(asgi_pool):
    """Every serverless test may reach serverless.asgi's pool (see tests/conftest.py)."""
