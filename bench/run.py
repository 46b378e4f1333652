"""`python -m bench.run [--quick]`: start everything on loopback, measure, print, write JSON.

Starts a single etcd, a throwaway MariaDB and configcenter servers (SQLite, MariaDB, and
with etcd when cluster mode exists), runs bounded load from separate processes (wrk,
subscriber processes, this process as publisher), stops everything — also on Ctrl-C or a
failure — prints the table and writes bench/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import compat, phases, scale
from bench.plan import FULL, QUICK, Plan
from bench.report import render, targets
from bench.stack import Stack, cluster_mode_available
from bench.stats import machine, raise_nofile_limit

log = logging.getLogger("bench")

HERE = Path(__file__).resolve().parent
PHASES = (
    "read",
    "push",
    "publish",
    "gray",
    "instance-read",
    "instance-churn",
    "compat-read",
    "longpoll",
    "scale",
    "many-envs",
)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


async def _run(
    stack: Stack, plan: Plan, only: set[str], profile_dir: Path | None
) -> dict[str, Any]:
    results: dict[str, Any] = {"errors": {}, "unavailable": []}
    missing = cluster_mode_available()
    cluster_targets: list[str] = []
    if missing is None:
        cluster_targets = ["etcd", "cluster"]
    else:
        results["unavailable"].append(
            f"with etcd and 3 replicas: {missing}; the harness runs them (targets 'etcd', "
            "'cluster') once it exists"
        )
    phase_runs: dict[str, Callable[[], Awaitable[Any]]] = {
        "read": lambda: phases.read_phase(stack, plan, profile_dir),
        "push": lambda: phases.push_phase(stack, plan, cluster_targets, profile_dir),
        "publish": lambda: phases.publish_phase(
            stack, plan, ["sqlite", "mariadb", *cluster_targets], profile_dir
        ),
        "gray": lambda: phases.gray_phase(stack, plan),
        "compat-read": lambda: compat.compat_read_phase(stack, plan),
        "longpoll": lambda: compat.longpoll_phase(stack, plan, profile_dir),
        "many-envs": lambda: scale.many_envs_phase(stack, plan),
        "instance-read": lambda: phases.instance_read_phase(
            stack, plan, ["sqlite", *cluster_targets[:1]]
        ),
    }
    if cluster_targets:
        phase_runs["instance-churn"] = lambda: phases.instance_churn_phase(stack, plan)
        phase_runs["scale"] = lambda: scale.scale_phase(stack, plan)
    # Where each phase's figures go (push and publish give two parts each).
    keys = {
        "push": ("push", "memory"),
        "publish": ("publish", "scaling"),
        "instance-read": ("instance_read",),
        "instance-churn": ("instance_churn",),
        "compat-read": ("compat_read",),
        "many-envs": ("many_envs",),
    }
    for name in PHASES:
        if name not in only or name not in phase_runs:
            continue
        try:
            measured = await phase_runs[name]()
        except Exception as exc:
            log.exception("%s phase failed", name)
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            continue
        parts = keys.get(name, (name,))
        for key, part in zip(parts, measured if len(parts) > 1 else (measured,), strict=True):
            results[key] = part
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a phase failed (the table shows what was measured)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test's run)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated: {','.join(PHASES)}"
    )
    parser.add_argument(
        "--profile", action="store_true", help="attach py-spy (perturbs figures; bench/profiles/)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s bench %(message)s"
    )
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    if not only <= set(PHASES):
        parser.error(f"--only takes {', '.join(PHASES)}")
    plan = QUICK if args.quick else FULL
    profile_dir = HERE / "profiles" if args.profile else None
    raise_nofile_limit()  # inherited by every server and load generator started from here
    # Ctrl-C and SIGTERM raise KeyboardInterrupt wherever the run is (asyncio's own Ctrl-C
    # handling only cancels the main task, which a library may swallow); the Stack then
    # stops every process.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    base_dir = Path(tempfile.mkdtemp(prefix="configcenter-bench-"))
    started = time.monotonic()
    results: dict[str, Any] = {
        "plan": plan.__dict__,
        "machine": machine(),
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    failed = True
    try:
        with Stack(base_dir) as stack:
            results.update(asyncio.run(_run(stack, plan, only, profile_dir)))
        failed = bool(results["errors"])
    except KeyboardInterrupt:
        print("bench: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        results.setdefault("errors", {})["run"] = traceback.format_exc(limit=3)
    finally:
        if failed or args.keep:
            print(f"bench: logs kept in {base_dir}", file=sys.stderr)
        else:
            shutil.rmtree(base_dir, ignore_errors=True)
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(render(results))
    print(f"\nwrote {args.out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
