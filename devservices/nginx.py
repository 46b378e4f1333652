"""Debian's nginx as a throwaway TLS reverse proxy, configured as docs/proxy.md documents."""

from __future__ import annotations

import http.client
import os
import re
import ssl
from pathlib import Path

from devservices.process import LOOPBACK, REPO_ROOT, Process, Service, free_port, tail, wait_until
from devservices.tls import CertFiles, CertificateAuthority, client_ssl_context

NGINX_BIN = "/usr/sbin/nginx"
PROXY_DOC = REPO_ROOT / "docs" / "proxy.md"
_NGINX_BLOCK = re.compile(r"```nginx\n(.*?)```", re.DOTALL)


def documented_config() -> str:
    """The nginx block of docs/proxy.md, as written there."""
    blocks = _NGINX_BLOCK.findall(PROXY_DOC.read_text(encoding="utf-8"))
    if len(blocks) != 1:
        raise RuntimeError(f"{PROXY_DOC}: expected one ```nginx block, found {len(blocks)}")
    return str(blocks[0])


def _replace_once(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise RuntimeError(f"{PROXY_DOC}: the nginx block has {count} matches of {pattern!r}")
    return new


def local_config(
    documented: str, listen_port: int, upstream_port: int, cert: Path, key: Path
) -> str:
    """The documented block with loopback addresses and these certificate paths, else as is."""
    text = _replace_once(
        documented,
        r"^upstream configcenter \{\n(?:  server [^\n]+;\n)+\}$",
        f"upstream configcenter {{\n  server {LOOPBACK}:{upstream_port};\n}}",
    )
    text = _replace_once(text, r"^  listen 443 ssl;$", f"  listen {LOOPBACK}:{listen_port} ssl;")
    text = _replace_once(text, r"^  ssl_certificate \S+;$", f"  ssl_certificate {cert};")
    return _replace_once(text, r"^  ssl_certificate_key \S+;$", f"  ssl_certificate_key {key};")


class NginxProxy(Service):
    """nginx on a free loopback port terminating TLS in front of 127.0.0.1:upstream_port.

    Its own process (`daemon off`) with its own config, prefix, pid, logs and temp paths in
    base_dir; Debian's nginx service is never used.
    """

    def __init__(
        self,
        base_dir: Path,
        upstream_port: int,
        *,
        port: int | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.base_dir = base_dir
        self.upstream_port = upstream_port
        self.port = port if port is not None else free_port()
        self.startup_timeout = startup_timeout
        self.config_path = base_dir / "nginx.conf"
        self.error_log = base_dir / "error.log"
        self.access_log = base_dir / "access.log"
        self.authority: CertificateAuthority | None = None
        self.certificate: CertFiles | None = None
        self._process: Process | None = None

    @property
    def url(self) -> str:
        """https://127.0.0.1:PORT."""
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def origin(self) -> str:
        """The origin a browser sends for pages served through the proxy."""
        return self.url

    def client_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the proxy's certificate."""
        assert self.authority is not None, "start the proxy first"
        return client_ssl_context(self.authority.cert_file, None)

    def _write_config(self, certificate: CertFiles) -> None:
        temp = self.base_dir / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        site = local_config(
            documented_config(),
            self.port,
            self.upstream_port,
            certificate.cert_file,
            certificate.key_file,
        )
        # As root, nginx would run its workers as nobody, who cannot write the temp dirs here;
        # as any other user the workers are that user already.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp_paths = "".join(
            f"  {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.config_path.write_text(
            f"{user}daemon off;\n"
            "worker_processes 1;\n"
            f"pid {self.base_dir / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log {self.access_log};\n"
            f"{temp_paths}"
            f"{site}"
            "}\n",
            encoding="utf-8",
        )

    def start(self) -> None:
        """Make the certificates, write the config, start nginx, wait for GET /healthz 200."""
        if self._process is not None and self._process.running:
            raise RuntimeError("nginx is already running")
        if not Path(NGINX_BIN).exists():
            raise RuntimeError(f"{NGINX_BIN} is missing: install Debian's nginx (scripts/setup)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.authority = CertificateAuthority(self.base_dir / "tls")
        self.certificate = self.authority.issue(
            "proxy", ip_addresses=(LOOPBACK,), dns_names=("localhost",), server=True
        )
        self._write_config(self.certificate)
        self._process = Process(
            f"nginx :{self.port}",
            [
                NGINX_BIN,
                "-p",
                str(self.base_dir),
                "-e",
                str(self.error_log),
                "-c",
                str(self.config_path),
            ],
            self.base_dir / "nginx.out",
            stop_timeout=10.0,
        )
        try:
            self._process.start()
            wait_until("nginx", self._ready, [self._process], self.startup_timeout)
        except BaseException:
            self._process.kill()
            raise

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown), SIGKILL after 10 s."""
        if self._process is not None:
            self._process.stop()

    def error_log_tail(self, lines: int = 40) -> str:
        """The end of nginx's error log."""
        return tail(self.error_log, lines)

    def _ready(self) -> bool:
        connection = http.client.HTTPSConnection(
            LOOPBACK, self.port, timeout=1.0, context=self.client_context()
        )
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
