import pytest

from serverless import asgi


@pytest.fixture(scope="session", autouse=True)
def serverless_pool_connections(django_db_setup):
    """The in-process application's /v2/ and held requests use serverless.asgi's thread pool,
    whose threads keep their own connections: closed before the test database is dropped."""
    yield
    asgi.close_connections()
