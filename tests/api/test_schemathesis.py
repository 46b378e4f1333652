"""schemathesis against a running server: every route, every check, 0 failures.

A bounded, seeded run (tests/api/schemathesis_hooks.py signs it in and keeps long polls short).
Every operation of GET /api/openapi.json is run except the WebSocket upgrade: schemathesis
speaks HTTP request and response only, and the WebSocket protocol has its own suite
(tests/watch, tests/api/test_watch.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from devservices.process import DEFAULT_ADMIN_PASSWORD, REPO_ROOT
from tests.types import ServerProcessFactory

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Cases per operation and phase. Generation is deterministic (no seed, no example database):
# every run sends the same cases in the same order, so a run cannot fail by chance.
MAX_EXAMPLES = 5
# The run's budget: on an idle machine every phase completes well inside it (and the fuzzing
# and stateful phases repeat their same cases until it is spent); on two cores shared with a
# busy machine the budget ends the run early rather than the run growing past two minutes.
BUDGET_SECONDS = 60
# A hard stop if the run itself hangs.
RUN_TIMEOUT_SECONDS = 150


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    server_process: ServerProcessFactory, sqlite_url: str, tmp_path: Path
) -> None:
    server = server_process(sqlite_url)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "PYTHONPATH": str(REPO_ROOT),
        "CONFIGCENTER_TEST_URL": server.url,
        "CONFIGCENTER_TEST_PASSWORD": DEFAULT_ADMIN_PASSWORD,
    }
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server.url}/api/openapi.json",
        "--checks",
        "all",
        "--exclude-operation-id",
        "watch",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--max-time",
        str(BUDGET_SECONDS),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,  # schemathesis keeps a cache directory where it runs
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-30000:]
    # Each phase ran and sent requests: a run that tested nothing is no pass.
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase} (in" in output, output[-5000:]
    assert re.search(r"\b[1-9][0-9]* generated, [1-9][0-9]* passed", output), output[-5000:]
