"""config.toml plus CONFIGCENTER_<SECTION>_<KEY> overrides, as frozen dataclasses."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ENV_PREFIX = "CONFIGCENTER_"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.toml"


class ConfigError(Exception):
    """A config file or value that cannot be used; the process ends with exit code 2."""


@dataclass(frozen=True)
class ServerSection:
    """Where the HTTP server listens, how many connections it holds, how long an idle one."""

    host: str = "127.0.0.1"
    port: int = 8080
    heartbeat_seconds: float = 20.0
    max_connections: int = 10_000
    idle_timeout: float = 10.0
    # Several server processes on one host may listen on the same port (SO_REUSEPORT; the
    # kernel spreads new connections over them): each is a replica, so this needs etcd.
    reuse_port: bool = False
    # When set, GET /metrics needs `Authorization: Bearer <metrics_token>`.
    metrics_token: str = ""
    # Peers (IP addresses or CIDR networks) whose X-Forwarded-Proto/-Host/-For are believed.
    trusted_proxies: tuple[str, ...] = ()
    # The origin browsers use (https://config.example.com): what Origin must match, and
    # whether the session cookie is Secure. Empty: the request's own (or a trusted proxy's).
    public_url: str = ""

    @property
    def public_origin(self) -> tuple[str, str] | None:
        """(scheme, host[:port]) of public_url, or None when it is not set."""
        return parse_public_url(self.public_url) if self.public_url else None


@dataclass(frozen=True)
class StoreSection:
    """The relational store: sqlite:///PATH or mysql://USER:PASS@HOST:PORT/DB."""

    url: str = "sqlite:///data/configcenter.db"
    pool_size: int = 10


@dataclass(frozen=True)
class EtcdSection:
    """etcd endpoints (host:port or https://host:port; none: standalone), TLS and user."""

    endpoints: tuple[str, ...] = ()
    prefix: str = "/configcenter"
    lock_ttl: int = 10
    refresh_interval: float = 10.0
    # PEM files, relative to the config file's directory; made absolute by load_config.
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    # Best from CONFIGCENTER_ETCD_PASSWORD; never in a repr, so never in a log line.
    password: str = field(default="", repr=False)

    @property
    def tls(self) -> bool:
        """True when the client connects over TLS: an https:// endpoint or a CA or cert set."""
        return bool(self.ca_file or self.cert_file) or any(
            e.startswith("https://") for e in self.endpoints
        )


@dataclass(frozen=True)
class LimitsSection:
    """Size limits enforced at the edge."""

    max_value_bytes: int = 64 * 1024
    max_items_per_env: int = 10_000
    max_body_bytes: int = 2 * 1024 * 1024
    max_release_bytes: int = 8 * 1024 * 1024
    max_subscriptions_per_socket: int = 100
    send_queue_size: int = 256


@dataclass(frozen=True)
class AuthSection:
    """Sessions, the argon2 worker pool, and failed sign-ins allowed per client address a minute."""

    session_ttl: int = 12 * 3600
    password_workers: int = 1
    password_queue: int = 16
    failures_per_address: int = 30


@dataclass(frozen=True)
class SecretsSection:
    """The AES-256-GCM key of secret items: base64 in `key` (CONFIGCENTER_SECRETS_KEY) or in the
    file `key_file`; `old_key_files` still open values during a rotation. With none of them a
    standalone server creates data/secrets.key (docs/api-notes.md, Secrets)."""

    key: str = field(default="", repr=False)
    key_file: str = ""
    old_key_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstancesSection:
    """Instances (GET …/instances): how long an HTTP reader stays listed after its last read."""

    ttl_seconds: int = 600


@dataclass(frozen=True)
class CompatSection:
    """The APIs existing clients read through unchanged (Apollo, Spring Cloud Config, Nacos):
    each on or off, and how long an Apollo notifications long poll is held before its 304
    (under the Java client's 90 s read timeout and common proxies' 60 s)."""

    apollo: bool = True
    spring: bool = True
    nacos: bool = True
    apollo_hold_seconds: float = 55.0


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    server: ServerSection = field(default_factory=ServerSection)
    store: StoreSection = field(default_factory=StoreSection)
    etcd: EtcdSection = field(default_factory=EtcdSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    secrets: SecretsSection = field(default_factory=SecretsSection)
    instances: InstancesSection = field(default_factory=InstancesSection)
    compat: CompatSection = field(default_factory=CompatSection)
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def standalone(self) -> bool:
        """True when no etcd is configured."""
        return not self.etcd.endpoints

    def sqlite_path(self) -> Path | None:
        """The SQLite file for a sqlite:// store URL, relative paths against base_dir."""
        if not self.store.url.startswith("sqlite:///"):
            return None
        path = Path(unquote(self.store.url.removeprefix("sqlite:///")))
        return path if path.is_absolute() else self.base_dir / path


def parse_public_url(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) of an origin URL such as https://config.example.com:8443."""
    where = "[server] public_url"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: not a URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}: expected http://HOST or https://HOST, got {url!r}")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where}: needs a host and no user or password, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # The admin page and the API live at the root; a path prefix is not supported.
        raise ConfigError(f"{where}: must be an origin without a path or query, got {url!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return parts.scheme, host if port is None else f"{host}:{port}"


def _check_trusted_proxies(entries: tuple[str, ...]) -> None:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise ConfigError(
                f"[server] trusted_proxies: expected an IP address or a CIDR network "
                f"such as 10.0.0.0/24, got {entry!r} ({exc})"
            ) from None


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSection,
    "store": StoreSection,
    "etcd": EtcdSection,
    "limits": LimitsSection,
    "auth": AuthSection,
    "secrets": SecretsSection,
    "instances": InstancesSection,
    "compat": CompatSection,
}


def _coerce(section: str, key: str, kind: Any, value: Any, from_env: bool) -> Any:
    where = f"[{section}] {key}"
    if kind in (int, "int"):
        if from_env:
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if value < 0 or (value == 0 and key != "port"):
            raise ConfigError(f"{where}: must be positive, got {value}")
        return value
    if kind in (float, "float"):
        if from_env:
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: expected a positive number, got {value!r}")
        return float(value)
    if kind in (bool, "bool"):
        if from_env:
            words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            if str(value).lower() not in words:
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            value = words[str(value).lower()]
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in (str, "str"):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if kind in ("tuple[str, ...]",):
        if from_env:
            value = [part.strip() for part in str(value).split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported setting type {kind!r}")  # pragma: no cover


def _check(config: Config) -> Config:
    url = config.store.url
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "mysql"):
        raise ConfigError(f"[store] url: expected sqlite:///PATH or mysql://..., got {scheme!r}")
    if scheme == "mysql":
        parts = urlsplit(url)
        if not parts.hostname or not parts.path.strip("/"):
            raise ConfigError("[store] url: a mysql URL needs a host and a database name")
    if not 0 <= config.server.port <= 65535:
        raise ConfigError(f"[server] port: out of range: {config.server.port}")
    _check_trusted_proxies(config.server.trusted_proxies)
    if config.server.reuse_port and config.standalone:
        raise ConfigError(
            "[server] reuse_port: needs [etcd] endpoints: every process sharing the port is a "
            "replica, and replicas learn each other's releases through etcd"
        )
    if config.server.public_url:
        parse_public_url(config.server.public_url)
    if not config.etcd.prefix.startswith("/") or config.etcd.prefix.endswith("/"):
        raise ConfigError("[etcd] prefix: must start with '/' and not end with '/'")
    if config.etcd.lock_ttl < 2:
        raise ConfigError("[etcd] lock_ttl: must be at least 2 seconds")
    return dataclasses.replace(config, etcd=_check_etcd(config.etcd, config.base_dir))


_ENDPOINT_RE = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<host>[^/]+):(?P<port>\d+)/?$"
)


def _check_etcd(etcd: EtcdSection, base_dir: Path) -> EtcdSection:
    """Endpoints, schemes, TLS files and user checked; the files' paths made absolute."""
    schemes = set()
    for endpoint in etcd.endpoints:
        match = _ENDPOINT_RE.match(endpoint)
        if match is None:
            raise ConfigError(
                f"[etcd] endpoints: expected host:port or https://host:port, got {endpoint!r}"
            )
        scheme = (match["scheme"] or "").lower()
        if scheme not in ("", "http", "https"):
            raise ConfigError(f"[etcd] endpoints: scheme must be http or https, got {endpoint!r}")
        schemes.add(scheme)
    if {"http", "https"} <= schemes:
        raise ConfigError("[etcd] endpoints: mix http:// and https://; every member is the same")
    if "http" in schemes and (etcd.ca_file or etcd.cert_file or etcd.key_file):
        raise ConfigError(
            "[etcd] endpoints: http:// endpoints with ca_file/cert_file/key_file set; "
            "use https:// or host:port for TLS"
        )
    if bool(etcd.cert_file) != bool(etcd.key_file):
        raise ConfigError("[etcd] cert_file and key_file: give both (a client certificate) or none")
    if etcd.username and not etcd.password:
        raise ConfigError(
            "[etcd] username is set but no password: set [etcd] password or "
            "CONFIGCENTER_ETCD_PASSWORD"
        )
    if etcd.password and not etcd.username:
        raise ConfigError("[etcd] password is set but no username")
    etcd = dataclasses.replace(
        etcd,
        ca_file=_pem_file("ca_file", etcd.ca_file, base_dir),
        cert_file=_pem_file("cert_file", etcd.cert_file, base_dir),
        key_file=_pem_file("key_file", etcd.key_file, base_dir),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if etcd.ca_file:
        try:
            context.load_verify_locations(cafile=etcd.ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(f"[etcd] ca_file: {etcd.ca_file}: no CA certificate: {exc}") from None
    if etcd.cert_file:
        try:
            # An empty passphrase, lest OpenSSL prompt on the terminal for an encrypted key.
            context.load_cert_chain(etcd.cert_file, etcd.key_file, password=b"")
        except ssl.SSLError as exc:
            raise ConfigError(
                f"[etcd] cert_file and key_file: {etcd.cert_file} and {etcd.key_file} are not "
                f"a certificate and its unencrypted private key: {exc}"
            ) from None
    return etcd


def _pem_file(key: str, value: str, base_dir: Path) -> str:
    if not value:
        return ""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"[etcd] {key}: no such file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"[etcd] {key}: cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in text:
        raise ConfigError(f"[etcd] {key}: {path} is not a PEM file")
    return str(path)


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read a TOML file (default: config.toml beside the package) and apply env overrides."""
    environ = os.environ if environ is None else environ
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"{path}: no such config file")
    for name in raw:
        if name not in _SECTIONS:
            raise ConfigError(f"{path}: unknown section [{name}]")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise ConfigError(f"{path}: unknown key {key!r} in [{name}]")
        kwargs: dict[str, Any] = {}
        for key, f in fields.items():
            env_name = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
            if env_name in environ:
                kwargs[key] = _coerce(name, key, f.type, environ[env_name], from_env=True)
            elif key in values:
                kwargs[key] = _coerce(name, key, f.type, values[key], from_env=False)
        sections[name] = cls(**kwargs)
    base_dir = path.resolve().parent if path.exists() else Path.cwd()
    return _check(Config(**sections, base_dir=base_dir))


def with_server_address(config: Config, host: str | None, port: int | None) -> Config:
    """config with [server] host and port replaced where given (serve --host/--port)."""
    server = config.server
    if host is not None:
        if not host.strip():
            raise ConfigError("--host: must not be empty")
        server = dataclasses.replace(server, host=host)
    if port is not None:
        server = dataclasses.replace(server, port=port)
    return _check(dataclasses.replace(config, server=server))
