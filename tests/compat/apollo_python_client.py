"""Drive the real apollo-python client (PyPI apollo-python) against a server; JSON lines out.

    python apollo_python_client.py URL APP CLUSTER SECRET IP CACHE_DIR KEY[,KEY…]

Prints `{"values": {KEY: value}}` whenever the values it reads change, and
`{"change": [action, namespace, key, value]}` for each change its listener is told of. The
client logs (loguru) to stdout too: those lines are not JSON.
"""

from __future__ import annotations

import json
import sys
import time

from apollo_python.apollo_client import ApolloClient  # type: ignore[import-untyped]


def emit(record: dict[str, object]) -> None:
    """One JSON line in one write: the client's threads log to the same stdout (a short
    write to a pipe is never split, so lines do not interleave)."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Start the client, report what it reads until killed."""
    url, app, cluster, secret, ip, cache, keys = sys.argv[1:8]

    def listener(action: str, namespace: str, key: str, value: object) -> None:
        emit({"change": [action, namespace, key, value]})

    client = ApolloClient(
        app_id=app,
        config_url=url,
        cluster=cluster,
        secret=secret,
        client_ip=ip,
        cache_path=cache,
        change_listener=listener,
    )
    shown = None
    while True:
        values = {key: client.get_value(key) for key in keys.split(",")}
        if values != shown:
            emit({"values": values})
            shown = values
        time.sleep(0.1)


if __name__ == "__main__":
    main()
