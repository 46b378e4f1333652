"""Real Spring Cloud Config clients, unchanged, against a real server process: PyPI
`config-client` and npm `cloud-config-client` read, see a publish, read an old release by
label, authenticate with a token as the Basic password, recover across a restart, and fail
their own way on a wrong credential."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from config.spring import ConfigClient  # type: ignore[import-untyped]  # no type hints

from devservices import ServerProcess
from tests.types import ServerProcessFactory

NODE_CLIENT = Path(__file__).with_name("spring_client.js")
WITHIN = 20.0


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    """One admin request; fails the test unless it succeeds."""
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    status, answer = server.request(method, path, body, headers=headers)
    assert status < 300, (status, answer)
    return answer


def publish(server: ServerProcess, env: str, items: dict[str, str]) -> int:
    call(server, "PATCH", f"/api/v1/apps/shop/envs/{env}/items", {"set": items})
    return int(call(server, "POST", f"/api/v1/apps/shop/envs/{env}/releases", {})["version"])


def read_token(server: ServerProcess) -> str:
    body = call(server, "POST", "/api/v1/tokens", {"name": "svc", "scopes": ["read:shop"]})
    return str(body["token"])


@pytest.fixture
def server(server_process: ServerProcessFactory, sqlite_url: str) -> ServerProcess:
    """A server with the app shop (envs dev and prod, both published once)."""
    started = server_process(sqlite_url)
    call(started, "POST", "/api/v1/apps", {"name": "shop", "envs": ["dev", "prod"]})
    publish(started, "dev", {"db.host": "dev-db", "only.dev": "yes"})
    publish(started, "prod", {"db.host": "prod-db", "pool.size": "5"})
    return started


def python_client(
    server: ServerProcess, secret: str, profile: str = "prod", label: str = "main"
) -> ConfigClient:
    """config-client's ConfigClient, fetched once with the token as the Basic password."""
    client = ConfigClient(
        address=f"{server.url}/spring",
        app_name="shop",
        profile=profile,
        label=label,
        fail_fast=False,
    )
    client.get_config(auth=("any-user", secret), timeout=5)
    return client


def node_client(server: ServerProcess, **options: Any) -> dict[str, Any]:
    """cloud-config-client's load() once: {"properties": …} or {"error": …}."""
    options = {"endpoint": f"{server.url}/spring", "name": "shop", **options}
    done = subprocess.run(
        ["node", str(NODE_CLIENT), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=WITHIN,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def eventually(read: Any, what: str) -> Any:
    """read() once it stops raising ConnectionError (the server is coming back)."""
    deadline = time.monotonic() + WITHIN
    while True:
        try:
            return read()
        except ConnectionError:
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: no answer within {WITHIN} s")
            time.sleep(0.1)


def test_the_python_client_reads_profiles_labels_and_a_publish(server: ServerProcess) -> None:
    token = read_token(server)
    client = python_client(server, token)
    assert (client.get("db.host"), client.get("pool.size")) == ("prod-db", "5")
    both = python_client(server, token, profile="dev,prod")
    assert (both.get("db.host"), both.get("only.dev")) == ("prod-db", "yes")

    second = publish(server, "prod", {"db.host": "prod-db-2"})
    assert python_client(server, token).get("db.host") == "prod-db-2"
    old = python_client(server, token, label=str(second - 1))
    assert old.get("db.host") == "prod-db"
    assert python_client(server, token, label=str(second)).get("db.host") == "prod-db-2"

    bearer = ConfigClient(
        address=f"{server.url}/spring", app_name="shop", profile="prod", fail_fast=False
    )
    bearer.get_config(headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert bearer.get("db.host") == "prod-db-2"


def test_the_python_client_fails_its_way_on_a_wrong_credential(server: ServerProcess) -> None:
    with pytest.raises(ConnectionError):
        python_client(server, "cc_wrong")
    bearer_only = ConfigClient(
        address=f"{server.url}/spring", app_name="shop", profile="prod", fail_fast=True
    )
    with pytest.raises(SystemExit):
        bearer_only.get_config(timeout=5)  # no credential at all


def test_the_python_client_recovers_across_a_restart(server: ServerProcess) -> None:
    token = read_token(server)
    assert python_client(server, token).get("db.host") == "prod-db"
    server.stop()
    with pytest.raises(ConnectionError):
        python_client(server, token)
    server.start()
    back = eventually(lambda: python_client(server, token), "config-client after a restart")
    assert back.get("db.host") == "prod-db"
    publish(server, "prod", {"db.host": "after-restart"})
    assert python_client(server, token).get("db.host") == "after-restart"


def test_the_node_client_reads_with_a_token_sees_a_publish_and_is_an_instance(
    server: ServerProcess,
) -> None:
    token = read_token(server)
    auth = {"user": "any-user", "pass": token}
    headers = {"X-Config-Instance": "node-1"}
    first = node_client(server, profiles=["dev", "prod"], auth=auth, headers=headers)
    assert first["properties"]["db.host"] == "prod-db", first
    assert first["properties"]["only.dev"] == "yes"

    version = publish(server, "prod", {"db.host": "prod-db-2"})
    seen = node_client(server, profiles="prod", auth=auth)
    assert seen["properties"] == {"db.host": "prod-db-2", "pool.size": "5"}
    old = node_client(server, profiles="prod", label=str(version - 1), auth=auth)
    assert old["properties"]["db.host"] == "prod-db"
    bearer = node_client(server, profiles="prod", headers={"Authorization": f"Bearer {token}"})
    assert bearer["properties"]["db.host"] == "prod-db-2", bearer

    listing = call(server, "GET", "/api/v1/apps/shop/envs/prod/instances")
    spring = {i["instance"]: i["transport"] for i in listing["instances"]}
    assert spring.get("node-1") == "spring", listing


def test_the_node_client_gets_its_error_on_a_wrong_credential_and_recovers_a_restart(
    server: ServerProcess,
) -> None:
    token = read_token(server)
    wrong = node_client(server, profiles="prod", auth={"user": "x", "pass": "cc_wrong"})
    assert wrong == {"error": "Invalid response: 401"}
    assert node_client(server, profiles="prod") == {"error": "Invalid response: 401"}
    server.restart()
    again = node_client(server, profiles="prod", auth={"user": "x", "pass": token})
    assert again["properties"]["db.host"] == "prod-db", again
