"""Debian's nginx as a throwaway TLS reverse proxy, configured as docs/proxy.md documents."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import re
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devservices.process import LOOPBACK, REPO_ROOT, Process, Service, free_port, tail, wait_until

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


class CertificateAuthority:
    """A self-made CA and one server certificate for 127.0.0.1 and localhost, as PEM files."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = directory / "ca.pem"
        self.cert_path = directory / "server.pem"
        self.key_path = directory / "server.key"
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "configcenter test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        self.ca_path.write_bytes(ca_cert.public_bytes(pem))
        # The chain nginx presents: the server's certificate, then the CA's.
        self.cert_path.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
        self.key_path.write_bytes(
            server_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.key_path.chmod(0o600)

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this CA only (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.ca_path))


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
        self.certificates: CertificateAuthority | None = None
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
        assert self.certificates is not None, "start the proxy first"
        return self.certificates.client_context()

    def _write_config(self, certificates: CertificateAuthority) -> None:
        temp = self.base_dir / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        site = local_config(
            documented_config(),
            self.port,
            self.upstream_port,
            certificates.cert_path,
            certificates.key_path,
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
        self.certificates = CertificateAuthority(self.base_dir / "tls")
        self._write_config(self.certificates)
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
