"""Tests for server.domain.canonical."""

from __future__ import annotations

import hashlib
import json

from server.domain.canonical import canonical_json, checksum

TRICKY = {
    "z": "last",
    "a": "first",
    "B": "upper sorts before lower",
    "html": "<script>&amp;</script>",
    "quote": 'say "hi"',
    "bs": "c:\\dir\\",
    "ctl": "\x00\x01\x1f\x7f\t\n\r\b\f",
    "seps": "\u2028\u2029",
    "uni": "héllo 中文",
    "emoji": "😀",
    "empty": "",
}


def test_exact_bytes() -> None:
    expected = (
        '{"B":"upper sorts before lower","a":"first","bs":"c:\\\\dir\\\\",'
        '"ctl":"\\u0000\\u0001\\u001f\x7f\\t\\n\\r\\b\\f","emoji":"😀","empty":"",'
        '"html":"<script>&amp;</script>","quote":"say \\"hi\\"","seps":"\u2028\u2029",'
        '"uni":"héllo 中文","z":"last"}'
    )
    assert canonical_json(TRICKY) == expected


def test_matches_contract_definition() -> None:
    reference = json.dumps(TRICKY, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(TRICKY) == reference


def test_empty() -> None:
    assert canonical_json({}) == "{}"
    assert checksum({}) == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert checksum({}) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


def test_checksum_of_known_bytes() -> None:
    items = {"b": "é", "a": "1"}
    body = '{"a":"1","b":"é"}'.encode()
    assert body == b'{"a":"1","b":"\xc3\xa9"}'
    assert checksum(items) == "sha256:" + hashlib.sha256(body).hexdigest()


def test_checksum_ignores_insertion_order() -> None:
    assert checksum({"a": "1", "b": "2"}) == checksum({"b": "2", "a": "1"})
    assert checksum({"a": "1"}) != checksum({"a": "2"})
    assert checksum({"a": "1"}) != checksum({"a": "1", "b": ""})


def test_checksum_shape() -> None:
    value = checksum(TRICKY)
    prefix, digest = value.split(":")
    assert prefix == "sha256"
    assert len(digest) == 64
    assert digest == digest.lower()
    int(digest, 16)
