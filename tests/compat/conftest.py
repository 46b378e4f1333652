"""The compatible APIs' tests use the API tests' in-process app (tests/api/conftest.py)."""

from tests.api.conftest import api, api_factory  # noqa: F401 (fixtures, by name)
