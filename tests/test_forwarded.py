"""server.trusted_proxies and server.public_url: validation, and whom server.forwarded believes."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, ServerSection, load_config
from server.forwarded import Edge, behind_proxy

ROOT = Path(__file__).resolve().parent.parent


def edge(*trusted: str, public_url: str = "") -> Edge:
    return Edge.from_config(ServerSection(trusted_proxies=trusted, public_url=public_url))


def test_the_shipped_config_trusts_no_proxy_and_changes_no_request() -> None:
    server = load_config(ROOT / "config.toml", environ={}).server
    assert server.trusted_proxies == ()
    assert server.public_url == ""
    assert behind_proxy(server) is None


def test_both_keys_come_from_the_environment() -> None:
    server = load_config(
        ROOT / "config.toml",
        environ={
            "CONFIGCENTER_SERVER_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/24,::1",
            "CONFIGCENTER_SERVER_PUBLIC_URL": "https://Config.Example.com",
        },
    ).server
    assert server.trusted_proxies == ("10.0.0.5", "10.1.0.0/24", "::1")
    assert server.public_origin == ("https", "config.example.com")
    assert behind_proxy(server) is not None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://config.example.com", ("https", "config.example.com")),
        ("https://config.example.com/", ("https", "config.example.com")),
        ("https://config.example.com:8443", ("https", "config.example.com:8443")),
        ("http://10.0.0.5:8080", ("http", "10.0.0.5:8080")),
        ("https://[2001:db8::1]:8443", ("https", "[2001:db8::1]:8443")),
    ],
)
def test_a_public_url_is_an_origin(url: str, origin: tuple[str, str]) -> None:
    assert ServerSection(public_url=url).public_origin == origin


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"CONFIGCENTER_SERVER_TRUSTED_PROXIES": "nginx.internal"}, "[server] trusted_proxies"),
        ({"CONFIGCENTER_SERVER_TRUSTED_PROXIES": "10.0.0.5/8"}, "has host bits set"),
        ({"CONFIGCENTER_SERVER_TRUSTED_PROXIES": "10.0.0.0/33"}, "10.0.0.0/33"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "config.example.com"}, "[server] public_url"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "ftp://config.example.com"}, "https://HOST"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "https://"}, "needs a host"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "https://u:p@config.example.com"}, "no user"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "https://config.example.com/cc"}, "without a path"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "https://config.example.com?x=1"}, "without a path"),
        ({"CONFIGCENTER_SERVER_PUBLIC_URL": "https://config.example.com:99999"}, "not a URL"),
    ],
)
def test_a_bad_proxy_setting_is_one_clear_error(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(ROOT / "config.toml", environ=environ)
    assert fragment in str(error.value)


def test_a_list_in_the_file_is_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[server]\ntrusted_proxies = "10.0.0.5"\n')
    with pytest.raises(ConfigError, match="expected a list of strings"):
        load_config(path, environ={})
    path.write_text('[server]\ntrusted_proxies = ["10.0.0.5", "10.1.0.0/24"]\n')
    assert load_config(path, environ={}).server.trusted_proxies == ("10.0.0.5", "10.1.0.0/24")


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    proxies = edge("10.0.0.5")
    assert proxies.client_address("203.0.113.1", ["198.51.100.9"]) == "203.0.113.1"
    assert proxies.client_address("203.0.113.1", []) == "203.0.113.1"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ([], "10.0.0.5"),
        (["203.0.113.1"], "203.0.113.1"),
        # The client wrote the left-most hop itself; the proxy appended what it saw.
        (["198.51.100.9, 203.0.113.1"], "203.0.113.1"),
        (["198.51.100.9", "203.0.113.1"], "203.0.113.1"),
        # A chain of trusted proxies: the first untrusted hop from the right.
        (["198.51.100.9, 203.0.113.1, 10.1.0.7"], "203.0.113.1"),
        # Every hop trusted: the left-most is the client.
        (["10.1.0.8, 10.1.0.7"], "10.1.0.8"),
        # Garbage right of every untrusted hop ends the walk at the proxy that passed it on.
        (["203.0.113.1, not-an-address, 10.1.0.7"], "10.1.0.7"),
        (["unknown"], "10.0.0.5"),
        ([" 203.0.113.1 "], "203.0.113.1"),
        (["::ffff:203.0.113.1"], "203.0.113.1"),
    ],
)
def test_a_trusted_proxy_names_the_client(forwarded_for: list[str], client: str) -> None:
    assert edge("10.0.0.5", "10.1.0.0/24").client_address("10.0.0.5", forwarded_for) == client


def test_an_ipv4_mapped_peer_is_matched_as_ipv4() -> None:
    proxies = edge("127.0.0.1")
    assert proxies.client_address("::ffff:127.0.0.1", ["203.0.113.1"]) == "203.0.113.1"


def test_nothing_configured_changes_nothing() -> None:
    assert not edge().changes_requests
    assert edge("10.0.0.5").changes_requests
    assert edge(public_url="https://config.example.com").changes_requests
