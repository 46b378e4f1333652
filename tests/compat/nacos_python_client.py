"""Drives the real Python Nacos client (nacos-sdk-python) and prints what it sees, one JSON
line per event: `{"content": …}` for a read and each change it is told of, `{"error": …}`.

Usage: python nacos_python_client.py PORT DATA_ID GROUP get|watch, with NACOS_USERNAME and
NACOS_PASSWORD in the environment when it signs in; run in a directory of its own (the client
keeps snapshots under the working directory). SIGTERM ends it, its helper process too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import nacos  # type: ignore[import-untyped]


def say(**event: Any) -> None:
    print(json.dumps(event), flush=True)


def on_change(params: dict[str, Any]) -> None:
    say(content=params["content"])


def stop(signum: int, frame: FrameType | None) -> None:
    # Exiting runs multiprocessing's finalizers: the client's Manager process ends with us.
    sys.exit(0)


def main() -> int:
    port, data_id, group, mode = sys.argv[1:5]
    signal.signal(signal.SIGTERM, stop)
    here = Path.cwd()
    try:
        client = nacos.NacosClient(
            f"127.0.0.1:{port}",
            namespace="",
            username=os.environ.get("NACOS_USERNAME"),
            password=os.environ.get("NACOS_PASSWORD"),
            logDir=str(here / "logs"),
        )
        client.set_options(
            snapshot_base=str(here / "snapshot"),
            failover_base=str(here / "failover"),
        )
        content = client.get_config(data_id, group)
    except Exception as exc:
        say(error=f"{type(exc).__name__}: {exc}")
        return 1
    if mode == "watch":
        # Given what it read, the watcher counts a publish made from now on as a change (it
        # would read again otherwise, and take a publish made meanwhile as its start).
        client.add_config_watcher(data_id, group, on_change, content=content)
    say(content=content)
    if mode == "watch":
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
