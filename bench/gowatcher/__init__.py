"""The Go etcd watcher (main.go): built on first use from Debian's Go and etcd sources."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE.parent.parent / ".build"
BINARY = BUILD_DIR / "etcd-watcher"
# Debian's golang-etcd-server-dev puts etcd 3.4's sources (clientv3 and what it needs) here:
# a GOPATH build, offline, no module download.
GOPATH = Path("/usr/share/gocode")


def unavailable() -> str | None:
    """Why the Go watcher cannot be built here, or None."""
    if shutil.which("go") is None:
        return "no Go toolchain (Debian package golang-go; scripts/setup installs it)"
    if not (GOPATH / "src/go.etcd.io/etcd/clientv3").is_dir():
        return "no etcd Go sources (Debian package golang-etcd-server-dev; scripts/setup)"
    return None


def build() -> Path:
    """The watcher binary, built again when main.go is newer than it."""
    source = HERE / "main.go"
    if BINARY.exists() and BINARY.stat().st_mtime >= source.stat().st_mtime:
        return BINARY
    missing = unavailable()
    if missing is not None:
        raise RuntimeError(f"cannot build the Go etcd watcher: {missing}")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(BUILD_DIR / "go-cache"),
        "GOFLAGS": "",
    }
    result = subprocess.run(
        ["go", "build", "-o", str(BINARY), "."],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"go build of the etcd watcher failed:\n{result.stderr[-2000:]}")
    return BINARY
