"""`python -m bench.wsmem N [--runs R] [--no-ceiling] [--trace DIR]`: RSS per idle subscriber.

Each run starts a fresh SQLite server, connects N lean subscribers (bench/push.py) from other
processes, waits 1 s and reads the server's RSS, as the push phase does; then the same on the
bare aiohttp ceiling (bench/ceiling.py). Prints KB per subscriber for both.

--trace DIR: the servers run with tracemalloc on (25 frames) and dump a snapshot before and
one after the subscribers connect (DIR/before.snap, DIR/idle.snap; the ceiling's in
DIR/ceiling); the top allocation sites of each difference, by line and by traceback, are
printed. tracemalloc inflates RSS: the RSS
figures of a traced run are not comparable with untraced ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.api import Api, make_items, seed_app
from bench.push import (
    SubscriberFleet,
    SubscriberJob,
    connect_fleet,
    plan_jobs,
    process_count,
    source_ips,
)
from bench.stack import Stack
from bench.stats import raise_nofile_limit, rss_bytes

log = logging.getLogger("bench")

PER_PROCESS = 2_500
ENV = "prod"
# Put on the server's PYTHONPATH with --trace: tracemalloc from the start, a snapshot on SIGUSR1.
_SITECUSTOMIZE = """\
import os, signal, tracemalloc
tracemalloc.start(25)
_dir = os.environ["WSMEM_TRACE_DIR"]
_taken = [0]
def _dump(signum, frame):
    name = ("before", "idle")[min(_taken[0], 1)]
    _taken[0] += 1
    tracemalloc.take_snapshot().dump(os.path.join(_dir, name + ".snap"))
    open(os.path.join(_dir, name + ".done"), "w").close()
signal.signal(signal.SIGUSR1, _dump)
"""


async def _settled_rss(pid: int) -> int:
    await asyncio.sleep(1.0)  # as run_push: let the server settle before reading its memory
    return rss_bytes(pid)


async def _snapshot(pid: int, trace_dir: Path, name: str) -> None:
    os.kill(pid, signal.SIGUSR1)
    done = trace_dir / f"{name}.done"
    deadline = time.monotonic() + 300
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {name} snapshot from the server")
        await asyncio.sleep(0.2)


async def _fleet_rss(
    pid: int, count: int, make: Any, trace_dir: Path | None = None
) -> dict[str, Any]:
    ips = source_ips(process_count(count, PER_PROCESS))
    jobs = plan_jobs("ws", count, PER_PROCESS, lambda i, n: make(n, ips[i]))
    if trace_dir is not None:
        await _snapshot(pid, trace_dir, "before")
    before = await _settled_rss(pid)
    fleet = SubscriberFleet(jobs)
    fleet.start()
    try:
        seconds = await connect_fleet(fleet, count, 300.0)
        idle = await _settled_rss(pid)
        if trace_dir is not None:
            await _snapshot(pid, trace_dir, "idle")
    finally:
        fleet.stop()
    return {
        "subscribers": count,
        "connect_seconds": round(seconds, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_idle_mb": round(idle / 2**20, 1),
        "kb_per_subscriber": round((idle - before) / count / 1024, 2),
    }


def _prepare_trace(trace_dir: Path) -> None:
    trace_dir.mkdir(parents=True, exist_ok=True)
    for old in trace_dir.glob("*.done"):
        old.unlink()
    (trace_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)


async def one_run(
    base: Path, count: int, trace_dir: Path | None, ceiling_too: bool = True
) -> dict[str, Any]:
    """configcenter's RSS per idle subscriber, then the ceiling's, each on a fresh server."""
    with Stack(base) as stack:
        env: dict[str, str] = {}
        if trace_dir is not None:
            _prepare_trace(trace_dir)
            env = {"PYTHONPATH": str(trace_dir), "WSMEM_TRACE_DIR": str(trace_dir)}
        server = stack.start_server("sqlite-wsmem", env=env)[0]
        assert server.pid is not None
        api = await Api.login(server.url, stack.password)
        try:
            app = "wsmem"
            await seed_app(api, app, make_items(10, 64))
            token = await api.create_token("bench-wsmem", [f"read:{app}"])
            body, _ = await api.config(app, ENV)
        finally:
            await api.close()
        url = f"{server.url}/api/v1/watch?app={app}&env={ENV}"
        ours = await _fleet_rss(
            server.pid,
            count,
            lambda n, ip: SubscriberJob(
                kind="lean", count=n, timeout=600, urls=(url,), token=token, source_ip=ip
            ),
            trace_dir,
        )
        stack.stop_server("sqlite-wsmem")
        if not ceiling_too:
            return {"configcenter": ours}
        ceiling_trace = trace_dir / "ceiling" if trace_dir is not None else None
        if ceiling_trace is not None:
            _prepare_trace(ceiling_trace)
        # The ceiling's process takes this process's environment (a traced one: the hook's).
        saved = dict(os.environ)
        if ceiling_trace is not None:
            os.environ.update(PYTHONPATH=str(ceiling_trace), WSMEM_TRACE_DIR=str(ceiling_trace))
        try:
            ceiling = stack.start_ceiling("wsmem", body)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        bare = await _fleet_rss(
            ceiling.pid,
            count,
            lambda n, ip: SubscriberJob(
                kind="lean",
                count=n,
                timeout=600,
                urls=(f"{ceiling.url}/watch?ceiling=1",),
                source_ip=ip,
            ),
            ceiling_trace,
        )
    return {"configcenter": ours, "ceiling": bare}


def print_trace(trace_dir: Path, top: int, frames: int) -> None:
    """The largest growths between the two snapshots, by traceback."""
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    ]
    before = tracemalloc.Snapshot.load(str(trace_dir / "before.snap")).filter_traces(ignore)
    idle = tracemalloc.Snapshot.load(str(trace_dir / "idle.snap")).filter_traces(ignore)
    for key in ("lineno", "traceback"):
        stats = idle.compare_to(before, key)
        total = sum(s.size_diff for s in stats)
        print(f"\n== by {key}: total {total / 2**20:.1f} MiB")
        for stat in stats[:top]:
            print(f"{stat.size_diff / 1024:10.1f} KiB {stat.count_diff:+8d} blocks")
            if key == "traceback":
                for line in stat.traceback.format(limit=frames, most_recent_first=True):
                    print("      " + line)
            else:
                print("      " + str(stat.traceback[0]))


def main() -> None:
    """Run, print JSON per run."""
    parser = argparse.ArgumentParser(prog="python -m bench.wsmem", description=__doc__)
    parser.add_argument("count", type=int)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--trace", type=Path, default=None)
    parser.add_argument("--no-ceiling", action="store_true", help="configcenter only")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    raise_nofile_limit()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="wsmem-") as base:
            result = asyncio.run(one_run(Path(base), args.count, args.trace, not args.no_ceiling))
        print(json.dumps(result), flush=True)
    if args.trace is not None:
        print("\n==== configcenter")
        print_trace(args.trace, args.top, args.frames)
        if not args.no_ceiling:
            print("\n==== ceiling")
            print_trace(args.trace / "ceiling", args.top, args.frames)


if __name__ == "__main__":
    main()
