"""[etcd] TLS and user settings: checked at load, paths resolved, the password kept hidden."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devservices.tls import CertFiles, CertificateAuthority
from server.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA whose files the configs below point at."""
    return CertificateAuthority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def client(ca: CertificateAuthority) -> CertFiles:
    """A client certificate and its key."""
    return ca.issue("client", client=True)


def write(directory: Path, etcd: str) -> Path:
    path = directory / "config.toml"
    path.write_text(f'[etcd]\nendpoints = ["https://127.0.0.1:2379"]\n{etcd}', encoding="utf-8")
    return path


def test_tls_files_and_user_load_with_paths_relative_to_the_config_file(
    tmp_path: Path, ca: CertificateAuthority, client: CertFiles
) -> None:
    (tmp_path / "ca.pem").write_bytes(ca.cert_file.read_bytes())
    path = write(
        tmp_path,
        f'ca_file = "ca.pem"\ncert_file = "{client.cert_file}"\nkey_file = "{client.key_file}"\n'
        'username = "configcenter"\n',
    )
    config = load_config(path, environ={"CONFIGCENTER_ETCD_PASSWORD": "from-the-env"})
    assert config.etcd.ca_file == str(tmp_path / "ca.pem")
    assert config.etcd.cert_file == str(client.cert_file)
    assert (config.etcd.username, config.etcd.password) == ("configcenter", "from-the-env")
    assert config.etcd.tls
    assert "from-the-env" not in repr(config)


@pytest.mark.parametrize(
    ("endpoints", "ca_file", "tls"),
    [
        pytest.param(["127.0.0.1:2379"], False, False, id="host-port-plain"),
        pytest.param(["127.0.0.1:2379"], True, True, id="host-port-with-ca"),
        pytest.param(["https://127.0.0.1:2379"], False, True, id="https-system-roots"),
        pytest.param(["http://127.0.0.1:2379"], False, False, id="http"),
    ],
)
def test_the_scheme_and_ca_file_decide_tls(
    tmp_path: Path, ca: CertificateAuthority, endpoints: list[str], ca_file: bool, tls: bool
) -> None:
    lines = f"endpoints = {endpoints!r}\n".replace("'", '"')
    if ca_file:
        lines += f'ca_file = "{ca.cert_file}"\n'
    path = tmp_path / "config.toml"
    path.write_text(f"[etcd]\n{lines}", encoding="utf-8")
    assert load_config(path, environ={}).etcd.tls is tls


@pytest.mark.parametrize(
    ("etcd", "fragment"),
    [
        ('cert_file = "{cert}"\n', "give both (a client certificate) or none"),
        ('key_file = "{key}"\n', "give both (a client certificate) or none"),
        ('ca_file = "missing.pem"\n', "[etcd] ca_file: no such file:"),
        ('ca_file = "{dir}"\n', "[etcd] ca_file: cannot read"),
        ('ca_file = "{notpem}"\n', "is not a PEM file"),
        ('cert_file = "{cert}"\nkey_file = "{otherkey}"\n', "not a certificate and its"),
        ('ca_file = "{key}"\n', "no CA certificate"),
        ('username = "cc"\n', "set [etcd] password or CONFIGCENTER_ETCD_PASSWORD"),
        ('password = "pw"\n', "password is set but no username"),
    ],
)
def test_bad_tls_or_user_settings_are_refused_at_load(
    tmp_path: Path, ca: CertificateAuthority, client: CertFiles, etcd: str, fragment: str
) -> None:
    other = ca.issue("other", client=True)
    (tmp_path / "notpem.txt").write_text("hello", encoding="utf-8")
    text = etcd.format(
        cert=client.cert_file,
        key=client.key_file,
        otherkey=other.key_file,
        dir=tmp_path,
        notpem=tmp_path / "notpem.txt",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, text), environ={})
    assert fragment in str(refused.value)


@pytest.mark.parametrize(
    ("endpoints", "fragment"),
    [
        ('["http://a:1", "https://b:2"]', "mix http:// and https://"),
        ('["ftp://a:1"]', "scheme must be http or https"),
        ('["a"]', "expected host:port or https://host:port"),
        ('["https://a:1/path"]', "expected host:port or https://host:port"),
    ],
)
def test_bad_endpoints_are_refused(tmp_path: Path, endpoints: str, fragment: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[etcd]\nendpoints = {endpoints}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path, environ={})


def test_http_endpoints_with_tls_files_are_a_contradiction(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[etcd]\nendpoints = ["http://127.0.0.1:2379"]\nca_file = "{ca.cert_file}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="use https:// or host:port for TLS"):
        load_config(path, environ={})


def test_serve_with_a_missing_cert_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = write(tmp_path, 'cert_file = "nope.pem"\nkey_file = "nope-key.pem"\n')
    done = subprocess.run(
        [sys.executable, "-m", "server", "--config", str(path), "serve"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"[etcd] cert_file: no such file: {tmp_path / 'nope.pem'}" in done.stderr
    assert "Traceback" not in done.stderr
