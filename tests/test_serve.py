"""`configcenter serve`: where it listens, and one clear line when it cannot."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from devservices import ServerProcess, free_port
from tests.helpers import LineReader

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CONFIGCENTER_STORE_URL": f"sqlite:///{tmp_path}/store.db",
        "CONFIGCENTER_SERVER_PORT": str(port),
    }


def _serve(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # Once from the config (the env override), once from --port over another config port.
        for args, env_port in (((), port), (("--port", str(port)), free_port())):
            process = _serve(*args, env=_env(tmp_path, env_port))
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 2, stderr
            assert stdout == ""
            assert stderr.splitlines() == [
                f"configcenter: port {port} is in use; set CONFIGCENTER_SERVER_PORT or --port"
            ]


def test_host_and_port_flags_override_the_config(tmp_path: Path) -> None:
    port = free_port()
    # The config says another port (and host): the flags win.
    env = {**_env(tmp_path, free_port()), "CONFIGCENTER_SERVER_HOST": "localhost"}
    process = _serve("--host", "127.0.0.1", "--port", str(port), env=env)
    reader = LineReader(process.stderr)
    lines = reader.lines
    try:
        while True:
            line = lines.get(timeout=60)
            assert "Traceback" not in line
            if "serving on" in line:
                break
        assert f"serving on http://127.0.0.1:{port} " in line
        # Logged once the socket is bound and the app started: it answers at once.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/healthz")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def test_a_bad_port_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "70000"],
        cwd=ROOT,
        env=_env(tmp_path, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "argument --port" in result.stderr
    assert "Traceback" not in result.stderr


def _idle_connection(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    return conn


def _closed_by_server(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_the_served_server_caps_connections_and_closes_idle_ones(tmp_path: Path) -> None:
    """At the cap of 4, idle sockets are pushed out for a real request, and closed after 1 s."""
    server = ServerProcess(
        tmp_path / "server",
        f"sqlite:///{tmp_path}/store.db",
        env={"CONFIGCENTER_SERVER_MAX_CONNECTIONS": "4", "CONFIGCENTER_SERVER_IDLE_TIMEOUT": "1"},
    )
    with server:
        idle = [_idle_connection(server.port) for _ in range(4)]
        try:
            assert server.request("GET", "/healthz")[0] == 200
            assert _closed_by_server(idle[0], within=5.0), "the oldest idle socket was pushed out"
            assert all(_closed_by_server(conn, within=5.0) for conn in idle[1:]), "idle timeout"
        finally:
            for conn in idle:
                conn.close()
        assert "open-files limit" in server.log_text()


def test_a_malformed_request_is_logged_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", f"sqlite:///{tmp_path}/store.db")
    with server:
        for junk in (
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n",
            b"\x16\x03\x01junk\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
                conn.sendall(junk)
                assert conn.recv(1024).split(b" ", 2)[1] == b"400"
        assert server.request("GET", "/healthz")[0] == 200
        log = server.log_text()
    assert "Traceback" not in log
    assert "Error handling request" in log
