"""The compatible APIs' tests run on the API's fixtures: an app on SQLite and on MariaDB."""

from tests.api.conftest import api, api_factory
from tests.api.test_store_outage import own_mariadb

__all__ = ["api", "api_factory", "own_mariadb"]
