"""Fixtures the API tests share; a module that needs other parts defines its own."""

import pytest

from tests.api.test_api_keys import make_key
from tests.pods.conftest import parts  # noqa: F401 (the catalogue, as the pods tests use it)


@pytest.fixture
def secret(team, alice) -> str:
    """A read/write key of alice's in acme."""
    return make_key(team, alice)[1]
