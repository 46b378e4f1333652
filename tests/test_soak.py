"""The fault soak, one minute of it: no release lost, duplicated or delivered out of order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devservices import REPO_ROOT


@pytest.mark.cluster
def test_a_minute_of_faults_loses_duplicates_and_reorders_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            *("--seconds", "60", "--fault-every", "10", "--settle", "10"),
            *("--subscribers", "300", "--pollers", "30", "--out", str(report_path)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert report_path.exists(), result.stderr[-3000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["invariants"] == dict.fromkeys(report["invariants"], 0), result.stdout
    assert result.returncode == 0, result.stdout
    assert len(report["faults"]) == 5, report["faults"]
    assert report["publishes_accepted"] > 50
    assert report["releases_in_store"] >= report["publishes_accepted"]
    assert report["deliveries"] > report["publishes_accepted"]
