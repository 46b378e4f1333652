"""Percentiles, CPU use of processes, and the machine description."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psutil


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """p50, p99, max and count of latencies given in seconds, in milliseconds."""
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3) if seconds else float("nan"),
        "count": len(seconds),
    }


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


@dataclass
class CpuMeter:
    """CPU time used by named processes over an interval, as % of one core."""

    pids: dict[str, list[int]]
    _start: dict[str, float]
    _started_at: float

    @classmethod
    def start(cls, pids: dict[str, Iterable[int | None]]) -> CpuMeter:
        """Begin measuring; a None pid is ignored."""
        clean = {name: [p for p in group if p is not None] for name, group in pids.items()}
        first = {name: sum(_cpu_seconds(p) for p in group) for name, group in clean.items()}
        return cls(clean, first, time.monotonic())

    def elapsed(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self._started_at

    def seconds(self) -> dict[str, float]:
        """CPU seconds each group used since start."""
        return {
            name: sum(_cpu_seconds(p) for p in group) - self._start[name]
            for name, group in self.pids.items()
        }

    def stop(self) -> dict[str, float]:
        """% of one core each group used since start (200 = both cores of this machine)."""
        elapsed = max(time.monotonic() - self._started_at, 1e-6)
        return {name: round(100 * used / elapsed) for name, used in self.seconds().items()}


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    return int(psutil.Process(pid).memory_info().rss)


def machine() -> dict[str, object]:
    """What the run ran on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "etcd": _version(["/usr/bin/etcd", "--version"]),
        "mariadb": _version(["/usr/sbin/mariadbd", "--version"]),
        "wrk": _version(["/usr/bin/wrk", "-v"]),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if text else "unknown"
