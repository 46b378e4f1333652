"""The benchmark at tiny sizes, so it cannot rot: every figure is there and sane (no timings)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.plan import QUICK
from bench.stack import cluster_mode_available

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.mariadb, pytest.mark.etcd, pytest.mark.cluster]


# Every phase at tiny sizes takes 2½ minutes alone here; twice that under a loaded machine.
QUICK_LIMIT_SECONDS = 480


def _run_quick(out: Path) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=QUICK_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the benchmark then stops every server it started.
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(
            f"the quick benchmark did not finish in {QUICK_LIMIT_SECONDS} s:\n{output[-3000:]}"
        )
    return process.returncode, output


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value) and value > 0


def _latencies_sane(result: dict[str, Any]) -> None:
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"], result


@pytest.mark.timeout(QUICK_LIMIT_SECONDS + 120)
def test_quick_benchmark_prints_and_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    code, output = _run_quick(out)
    assert code == 0, output[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["errors"] == {}
    headings = ["READ:", "PUSH:", "MEMORY:", "PUBLISH:", "SCALING:", "GRAY:", "INSTANCE READS:"]
    headings += ["COMPAT READ:", "LONG POLL:", "MANY ENVS:"]
    if cluster_mode_available() is None:
        headings += ["INSTANCE CHURN:", "SCALE:"]
    for heading in [*headings, "TARGETS"]:
        assert heading in output

    # read: every size, with and without If-None-Match, etcd beside it
    assert [row["items"] for row in results["read"]] == list(QUICK.item_sizes)
    for row in results["read"]:
        assert row["body_bytes"] > 0
        for side in ("configcenter", "if_none_match", "etcd"):
            assert _positive(row[side]["rps"]), row
            assert row[side]["socket_errors"] == 0
        assert row["configcenter"]["bad_status"] == 0
        assert _positive(row["ratio"])
        assert _positive(row["ratio_if_none_match"])
        # the bare aiohttp ceiling, measured by the same wrk
        assert _positive(row["ceiling"]["rps"]), row
        assert _positive(row["ratio_ceiling"])

    # push: every count delivered in full to subscribers and to etcd watchers
    counts = [r["subscribers"] for r in results["push"] if r["target"] == "sqlite"]
    assert sorted(counts) == sorted(QUICK.push_counts)
    for row in results["push"]:
        for side in ("configcenter", "etcd"):
            result = row[side]
            assert (
                result["delivered"] == result["expected"] == row["subscribers"] * QUICK.push_rounds
            )
            _latencies_sane(result)
        assert _positive(row["ratio_p99"])
        if row["target"] == "sqlite":
            # the bare broadcast, to the same lean subscribers
            ceiling = row["ceiling"]
            assert (
                ceiling["delivered"]
                == ceiling["expected"]
                == row["subscribers"] * QUICK.push_rounds
            )
            _latencies_sane(ceiling)
            assert _positive(row["ceiling_ratio_p99"])
            # and etcd's fan-out to watchers on its own Go client (scripts/setup installs Go)
            go = row["etcd_go"]
            assert go["delivered"] == go["expected"] == row["subscribers"] * QUICK.push_rounds
            _latencies_sane(go)
            assert _positive(row["ratio_p99_go"])
    assert _positive(results["memory"]["kb_per_subscriber"])
    # beside the bare aiohttp ceiling's RSS per idle subscriber (20 sockets may not move a
    # fresh process's RSS by a page: a number, not necessarily a positive one)
    assert isinstance(results["memory"]["ceiling_kb_per_subscriber"], int | float)
    assert "ratio_ceiling" in results["memory"]

    # publish: SQLite and MariaDB (and etcd, 3 replicas when cluster mode exists), etcd beside
    expected_targets = ["sqlite", "mariadb"]
    if cluster_mode_available() is None:
        expected_targets += ["etcd", "cluster"]
        assert {"etcd", "cluster"} <= {r["target"] for r in results["push"]}
    else:
        assert results["unavailable"]
    assert [row["target"] for row in results["publish"]] == expected_targets
    for row in results["publish"] + results["scaling"]:
        ours = row["configcenter"]
        _latencies_sane(ours["sequential"])
        _latencies_sane(ours["concurrent"])
        assert _positive(ours["per_second"])
        assert _positive(row["etcd"]["per_second"])
        _latencies_sane(row["etcd"]["sequential"])
    assert {(r["target"], r["items"]) for r in results["scaling"]} == {
        (target, size) for target in ("sqlite", "mariadb") for size in QUICK.item_sizes
    }

    # gray: the rule's subscribers got every gray version, nobody else any; a plain publish
    # and the abandon reached everyone
    gray = results["gray"]
    assert 0 < gray["matched"] < QUICK.gray_subscribers
    assert gray["outside_got_gray"] == gray["matched_missed"] == 0
    assert gray["outside"] == QUICK.gray_subscribers - gray["matched"]
    for series, receivers in (
        ("gray", gray["matched"]),
        ("full", QUICK.gray_subscribers),
        ("abandon", QUICK.gray_subscribers),
    ):
        result = gray[series]
        assert result["rounds"] == QUICK.gray_cycles
        assert result["delivered"] == result["expected"] == receivers * QUICK.gray_cycles
        _latencies_sane(result)
    assert _positive(gray["ratio_p99"])

    # instance reads: both sides measured; every rotating id was listed
    reads = results["instance_read"]
    assert [row["target"] for row in reads] == ["sqlite", *expected_targets[2:3]]  # +etcd
    for row in reads:
        assert _positive(row["anonymous"]["rps"])
        assert _positive(row["named"]["rps"])
        assert _positive(row["ratio"])
        assert row["listed"] == QUICK.instance_read_ids

    # instance churn: subscribers reconnected, and the summary puts were counted both ways
    churn = results.get("instance_churn")
    if cluster_mode_available() is None:
        assert churn is not None
        assert _positive(churn["connects_per_second"])
        assert churn["etcd_puts"] > 0
        assert churn["server_summary_writes"] > 0

    # compatible reads: each protocol's read of the same env beside etcd's gateway
    compat_reads = results["compat_read"]
    assert [row["protocol"] for row in compat_reads] == ["api", "apollo", "spring", "nacos"]
    for row in compat_reads:
        assert row["body_bytes"] > 0
        for side in ("configcenter", "etcd"):
            assert _positive(row[side]["rps"]), row
            assert row[side]["socket_errors"] == row[side]["bad_status"] == 0
        assert _positive(row["ratio"])

    # long polls: every waiting client of each protocol notified of every publish
    polls = results["longpoll"]
    assert [(row["protocol"], row["waiting"]) for row in polls] == list(QUICK.longpoll_counts)
    for row in polls:
        assert row["delivered"] == row["expected"] == row["waiting"] * QUICK.longpoll_rounds
        _latencies_sane(row["notify"])
        # CPU readings have 10 ms steps: a tiny run may read none on either side.
        assert row["limit"] in ("server", "client")
        assert row["server_cpu_us_per_delivery"] >= 0
        assert row["client_cpu_us_per_delivery"] >= 0
    # ... each beside the bare-aiohttp ceiling holding as many polls
    for row in polls:
        bare = row["ceiling"]
        assert bare["delivered"] == bare["expected"] == row["expected"]
        _latencies_sane(bare["notify"])

    # scale: every release reached every subscriber over the 3 replicas
    if cluster_mode_available() is None:
        scaled = results["scale"]
        assert scaled["delivered"] == scaled["expected"]
        assert scaled["expected"] == QUICK.scale_subscribers * QUICK.scale_rounds
        assert scaled["replicas"] == 3
        _latencies_sane(scaled)

    # many envs: seeded, restarted, the refresh measured
    many = results["many_envs"]
    assert many["envs"] == QUICK.many_apps * QUICK.many_envs
    assert 0 < many["startup_seconds"] < 60
    assert many["rss_mb"] > 0
    assert many["etcd_bytes_sent_per_interval"] >= 0

    # targets: each printed as met, not met or not measured (the quick sizes miss some)
    assert len(results["targets"]) == 5 + 3 + 2 + 1 + len(reads) + 1 + 3 + 1 + 1 + 2 + 6 + 2
    for target in results["targets"]:
        state = {True: "met", False: "NOT MET", None: "not measured"}[target["met"]]
        assert f"[{state}] {target['name']}" in output
