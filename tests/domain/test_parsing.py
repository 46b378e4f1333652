"""Reading imported files: what the server renders reads back exactly; bad lines are named."""

from __future__ import annotations

import pytest

from server.domain.formats import render
from server.domain.parsing import parse_file
from server.errors import AppError

LIMIT = 64 * 1024

# Values that break naive readers and writers of each format.
HOSTILE = {
    "newline": "line one\nline two\n",
    "crlf": "a\r\nb",
    "equals": "a=b=c",
    "colon": "host:port: x",
    "hash": "#not a comment",
    "bang": "!not a comment",
    "unicode": "Grüße, 世界 😀",
    "double-quote": 'say "hi"',
    "single-quote": "it's",
    "command": "$(rm -rf /) `id` ${HOME}",
    "backslash": "C:\\dir\\file",
    "spaces": "  leading and trailing  ",
    "empty": "",
    "tab": "a\tb",
    "controls": "\x00\x01\x1b\x7f",
    "separators": "\u2028\u2029\x85",
    "yaml-words": "yes",
    "number": "0x1F",
}

# python-dotenv reads what sh reads except a value with a carriage return, or with both a quote
# or backslash and a $ or backtick (docs/api-notes.md); the dotenv round trip leaves those out.
DOTENV_SAFE = {
    "NEWLINE": "line one\nline two\n",
    "EQUALS": "a=b=c",
    "COLON": "host:port: x",
    "HASH": "#not a comment",
    "UNICODE": "Grüße, 世界 😀",
    "DOUBLE_QUOTE": 'say "hi"',
    "SINGLE_QUOTE": "it's",
    "COMMAND": "$(rm -rf /) `id` ${HOME}",
    "BACKSLASH": "C:\\dir\\file",
    "SPACES": "  leading and trailing  ",
    "EMPTY": "",
    "TAB": "a\tb",
    "_1ST": "x",
}


def rendered(fmt: str, items: dict[str, str]) -> bytes:
    body, _ = render(fmt, "shop", "prod", 1, "sha256:x", items)
    return body


@pytest.mark.parametrize("fmt", ["json", "properties", "yaml"])
def test_what_the_server_renders_reads_back_exactly(fmt: str) -> None:
    items = {**HOSTILE, "dotted.key": "v", "with:colon": "v", "path/like-key_1": "v"}
    assert parse_file(fmt, rendered(fmt, items), LIMIT) == items


def test_dotenv_reads_back_what_the_server_renders() -> None:
    assert parse_file("dotenv", rendered("dotenv", DOTENV_SAFE), LIMIT) == DOTENV_SAFE


def test_properties_are_read_as_java_reads_them() -> None:
    text = (
        "# a comment\n"
        "! another, which does not go on \\\n"
        "plain=value\n"
        "colon:value\n"
        "space value with spaces\n"
        "  indented = trimmed before, kept after  \n"
        "continued = one \\\n"
        "            two\n"
        "escaped\\ key\\=x = \\u00e9\\t\\n\n"
        "crlf = a\r\n"
        "empty\n"
    ).replace("escaped\\ key\\=x", "escaped.key")
    assert parse_file("properties", text.encode(), LIMIT) == {
        "plain": "value",
        "colon": "value",
        "space": "value with spaces",
        "indented": "trimmed before, kept after  ",
        "continued": "one two",
        "escaped.key": "é\t\n",
        "crlf": "a",
        "empty": "",
    }


def test_yaml_and_dotenv_accept_the_usual_hand_written_files() -> None:
    yaml_text = "# settings\ndb.url: 'mysql://db'\nname: plain text\nempty: ''\n"
    assert parse_file("yaml", yaml_text.encode(), LIMIT) == {
        "db.url": "mysql://db",
        "name": "plain text",
        "empty": "",
    }
    assert parse_file("yaml", b"", LIMIT) == {}
    env_text = "# c\nexport A=1\nB=\"two words\"\nC='$NOT'\n\nD=${A}\n"
    assert parse_file("dotenv", env_text.encode(), LIMIT) == {
        "A": "1",
        "B": "two words",
        "C": "$NOT",
        "D": "${A}",
    }


def refusal(fmt: str, data: bytes, limit: int = LIMIT) -> str:
    with pytest.raises(AppError) as refused:
        parse_file(fmt, data, limit)
    assert (refused.value.code, refused.value.status) == ("invalid_import", 400)
    return refused.value.message


@pytest.mark.parametrize(
    ("fmt", "data", "names"),
    [
        ("json", b'{"a": "1",\n "b": 2}', "key 'b'"),
        ("json", b'{"a": "1",\n "b": }', "line 2"),
        ("json", b'["a"]', "flat object"),
        ("json", b'{"bad key": "1"}', "'bad key'"),
        ("json", b'{"a": {"nested": "x"}}', "key 'a'"),
        ("json", b"", "line 1"),
        ("properties", b"a=1\nb=\\uZZZZ\n", "line 2"),
        ("properties", b"a=1\n# c\n\nbad\\ key=1\n", "line 4"),
        ("properties", b"a=1\nlong=\\\n  continued\nbad$=x\n", "line 4"),
        ("yaml", b"a: '1'\nb: 8080\n", "line 2"),
        ("yaml", b"a: '1'\nb: [1, 2]\n", "line 2"),
        ("yaml", b"a: '1'\n'bad key': x\n", "line 2"),
        ("yaml", b"a: '1'\nb: true\n", "line 2"),
        ("yaml", b"a: '1'\nb: ~\n", "line 2"),
        ("yaml", b"a: '1'\n  b: : x\n", "line 2"),
        ("yaml", b"- a\n- b\n", "flat mapping"),
        ("dotenv", b"A=1\nB='unterminated\n", "line 2"),
        ("dotenv", b"A=1\nNOVALUE\n", "line 2"),
        ("dotenv", b"A=1\n\nbad$key=1\n", "line 3"),
        ("json", b'{"a": "\\ud800"}', "line 1"),
        ("yaml", b"a: '\xff'\n", "not UTF-8"),
    ],
)
def test_a_bad_line_is_refused_with_its_line(fmt: str, data: bytes, names: str) -> None:
    message = refusal(fmt, data)
    assert names in message, message
    assert "nothing was imported" in message


@pytest.mark.parametrize("fmt", ["json", "properties", "yaml", "dotenv"])
def test_a_value_over_the_limit_is_refused_naming_it(fmt: str) -> None:
    items = {"SMALL": "x", "BIG": "é" * 600}
    message = refusal(fmt, rendered(fmt, items), limit=1000)
    assert "BIG" in message
    assert "1200 bytes" in message


def test_an_unknown_format_is_invalid_format() -> None:
    with pytest.raises(AppError) as refused:
        parse_file("toml", b"a = 1", LIMIT)
    assert refused.value.code == "invalid_format"


def test_json_takes_a_flat_object_or_the_config_answer() -> None:
    assert parse_file("json", b'{"items": "a string", "a": "1"}', LIMIT) == {
        "items": "a string",
        "a": "1",
    }
    answer = b'{"app":"shop","env":"prod","version":3,"checksum":"sha256:x","items":{"a":"1"}}'
    assert parse_file("json", answer, LIMIT) == {"a": "1"}
