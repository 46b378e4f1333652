"""Helpers shared by tests in more than one folder."""

from __future__ import annotations

import queue
import threading
from typing import IO

from devservices.etcd import ROOT_USER, EtcdSecurity
from server.coord.etcd_conn import EtcdAccess


class LineReader:
    """The lines a child process writes to one of its pipes, read on a thread into a queue.

    A test can then wait for a line with a bound (`lines.get(timeout=…)`) while the process
    runs; reading the pipe directly would block without one.
    """

    def __init__(self, stream: IO[str] | None, *, strip_newlines: bool = False) -> None:
        assert stream is not None, "start the process with that pipe"
        self.lines: queue.Queue[str] = queue.Queue()
        self._stream = stream
        self._strip = strip_newlines
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.put(line.rstrip("\n") if self._strip else line)

    def join(self, timeout: float) -> None:
        """Wait for the pipe to close (the process ended) and every line to be queued."""
        self._thread.join(timeout=timeout)


def etcd_access(security: EtcdSecurity, *, as_root: bool = False) -> EtcdAccess:
    """How a test client reaches a secured etcd: its TLS, as the server's user or as root."""
    return EtcdAccess(
        tls=True,
        ca=security.ca_file.read_bytes(),
        cert=security.client.cert_file.read_bytes(),
        key=security.client.key_file.read_bytes(),
        username=ROOT_USER if as_root else security.username,
        password=security.root_password if as_root else security.password,
    )
