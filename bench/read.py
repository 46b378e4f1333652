"""Read throughput: wrk against GET …/config and against etcd's HTTP gateway range."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.stats import CpuMeter

WRK = "/usr/bin/wrk"
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    headers: dict[str, str] | None = None,
    lua: str | None = None,
    server_pids: list[int] | None = None,
) -> dict[str, Any]:
    """One wrk run (1 thread: the other core is the server's); requests/s, latency, CPU use."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        command = [
            WRK,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
        ]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        if lua is not None:
            script = Path(tmp) / "script.lua"
            script.write_text(lua, encoding="utf-8")
            command += ["-s", str(script)]
        command.append(url)
        out_path = Path(tmp) / "out.txt"
        with out_path.open("w", encoding="utf-8") as out_file:
            process = subprocess.Popen(command, stdout=out_file, stderr=subprocess.STDOUT)
        meter = CpuMeter.start({"server": server_pids or []})
        watchdog = threading.Timer(seconds + 60, process.kill)
        watchdog.start()
        try:
            # wait4 hands back the child's own CPU use, which psutil cannot read once reaped
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = meter.elapsed()
        cpu_seconds = meter.seconds()
        cpu_seconds["client"] = usage.ru_utime + usage.ru_stime
        cpu = {name: round(100 * used / wall) for name, used in cpu_seconds.items()}
        out = out_path.read_text(encoding="utf-8")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {out.strip()}")
    result = _parse(out, cpu)
    result["server_cpu_us_per_request"] = round(
        cpu_seconds["server"] / max(1, result["requests"]) * 1e6, 1
    )
    return result


def _parse(out: str, cpu: Mapping[str, float]) -> dict[str, Any]:
    rps = _RPS.search(out)
    if rps is None:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    total = _TOTAL.search(out)
    non2xx = _NON2XX.search(out)
    errors = _ERRORS.search(out)
    latency = {
        f"p{m.group(1)}_ms": float(m.group(2)) * _UNIT[m.group(3)] for m in _LATENCY.finditer(out)
    }
    return {
        "rps": round(float(rps.group(1))),
        "requests": int(total.group(1)) if total else 0,
        "bad_status": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        **latency,
        "server_cpu_pct": cpu["server"],
        "client_cpu_pct": cpu["client"],
        "limit": limit_side(cpu["server"], cpu["client"]),
    }


def limit_side(server_pct: float, client_pct: float) -> str:
    """What bound a run, from CPU use in % of one core (this machine has two)."""
    if server_pct + client_pct >= 180:
        return "cores full"
    if client_pct >= 90:
        return "client"
    if server_pct >= 90:
        return "server"
    return "neither (machine shared or latency-bound)"


def instance_reads_lua(ids: int) -> str:
    """A wrk script whose reads name themselves, rotating over `ids` instance ids, each with
    labels of its own; with ids 0 the same script sends the same requests without them.

    Both sides run this one script, so wrk does the same work per request on both.
    """
    return f"""local ids = {ids}
local n = 0
request = function()
  local headers = {{}}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  if ids > 0 then
    local i = n % ids
    headers["X-Config-Instance"] = "bench-read-" .. i
    headers["X-Config-Labels"] = "zone=z" .. (i % 3) .. ", bench=read"
  end
  n = n + 1
  return wrk.format(nil, nil, headers)
end
"""


def etcd_range_lua(key: bytes) -> str:
    """A wrk script POSTing a v3 range request for key."""
    body = json.dumps({"key": base64.b64encode(key).decode()})
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def etcd_put(port: int, key: bytes, value: bytes) -> None:
    """Put a key through the gateway (setup, not measured)."""
    import http.client

    body = json.dumps(
        {"key": base64.b64encode(key).decode(), "value": base64.b64encode(value).decode()}
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"etcd put: HTTP {response.status} {data[:200]!r}")
    finally:
        conn.close()


def etcd_range_size(port: int, key: bytes) -> int:
    """Bytes of the value the gateway returns for key (a check that the put landed)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v3/kv/range",
            body=json.dumps({"key": base64.b64encode(key).decode()}),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        data = json.loads(response.read())
    finally:
        conn.close()
    return len(base64.b64decode(data["kvs"][0]["value"]))


def etcd_read_of_size(
    host: str, port: int, pid: int | None, key: bytes, size: int, **wrk: Any
) -> dict[str, Any]:
    """wrk on etcd's gateway range of a value of `size` bytes put at key (what a read of that
    size is compared with)."""
    etcd_put(port, key, b"x" * size)
    if etcd_range_size(port, key) != size:
        raise RuntimeError("etcd returned a value of another size")
    return run_wrk(
        f"http://{host}:{port}/v3/kv/range",
        lua=etcd_range_lua(key),
        server_pids=[pid] if pid else [],
        **wrk,
    )
