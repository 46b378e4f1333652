"""The nginx configuration in the docs is the one the proxy tests run, and there is one."""

from __future__ import annotations

from pathlib import Path

from devservices import REPO_ROOT
from devservices.nginx import PROXY_DOC, documented_config, local_config


def test_the_tested_nginx_block_is_the_only_one_in_the_docs() -> None:
    docs = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    holders = [path.name for path in docs if "```nginx" in path.read_text(encoding="utf-8")]
    assert holders == [PROXY_DOC.name]


def test_the_fixture_changes_only_addresses_and_certificate_paths(tmp_path: Path) -> None:
    documented = documented_config()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    local = local_config(documented, 18443, 18080, cert, key)
    removed = set(documented.splitlines()) - set(local.splitlines())
    added = set(local.splitlines()) - set(documented.splitlines())
    assert removed == {
        "  server 10.0.0.11:8080;",
        "  server 10.0.0.12:8080;",
        "  server 10.0.0.13:8080;",
        "  listen 443 ssl;",
        "  ssl_certificate /etc/ssl/certs/config.example.com.pem;",
        "  ssl_certificate_key /etc/ssl/private/config.example.com.key;",
    }
    assert added == {
        "  server 127.0.0.1:18080;",
        "  listen 127.0.0.1:18443 ssl;",
        f"  ssl_certificate {cert};",
        f"  ssl_certificate_key {key};",
    }
