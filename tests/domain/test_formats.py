"""Tests for server.domain.formats."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from server.domain.formats import FORMATS, dotenv_name, render
from server.errors import AppError

CHECKSUM = "sha256:" + "0" * 64


def body_of(fmt: str, items: dict[str, str]) -> str:
    body, _ = render(fmt, "shop", "prod", 3, CHECKSUM, items)
    return body.decode("utf-8")


# --- a reference reader following java.util.Properties.load(Reader) ------------
_WS = " \t\f"


def _logical_lines(text: str) -> list[str]:
    physical = re.split(r"\r\n|\r|\n", text)
    lines = []
    i = 0
    while i < len(physical):
        line = physical[i].lstrip(_WS)
        i += 1
        if not line or line[0] in "#!":
            continue  # blank or comment; comments are never continued
        # An odd run of trailing backslashes continues the line on the next one.
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1 and i < len(physical):
            line = line[:-1] + physical[i].lstrip(_WS)
            i += 1
        lines.append(line)
    return lines


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        i += 1
        if c != "\\" or i == len(text):
            out.append(c)
            continue
        c = text[i]
        i += 1
        if c == "u":
            out.append(chr(int(text[i : i + 4], 16)))
            i += 4
        else:
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(c, c))
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Properties.load: key ends at an unescaped = : or whitespace; one separator."""
    result = {}
    for line in _logical_lines(text):
        key_end = len(line)
        value_start = len(line)
        has_sep = False
        backslash = False
        for i, c in enumerate(line):
            if c in "=:" and not backslash:
                key_end, value_start, has_sep = i, i + 1, True
                break
            if c in _WS and not backslash:
                key_end, value_start = i, i + 1
                break
            backslash = c == "\\" and not backslash
        while value_start < len(line):
            c = line[value_start]
            if c not in _WS:
                if has_sep or c not in "=:":
                    break
                has_sep = True
            value_start += 1
        result[_unescape(line[:key_end])] = _unescape(line[value_start:])
    return result


def test_reference_reader_on_hand_written_java_file() -> None:
    text = (
        "# comment\n"
        "  ! another\n"
        "\n"
        "a = 1\n"
        "b:2\n"
        "c 3\n"
        "d\t=  \\ 4 \n"
        "long = one, \\\n"
        "       two\n"
        "u = \\u00e9\\n\n"
        "e\n"
    )
    assert parse_properties(text) == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": " 4 ",
        "long": "one, two",
        "u": "é\n",
        "e": "",
    }


# Keys and values that each break a naive writer.
PROPERTIES_ITEMS = {
    "a": "plain",
    "lead": "  two leading spaces",
    "trail": "trailing   ",
    "tabs": "\tleading tab\tand\tmore",
    "nl": "line1\nline2\r\nline3\rx",
    "ff": "\fform feed",
    "eq": "a=b:c d#e!f",
    "hash": "#not a comment",
    "bang": "!not a comment",
    "bs": "back\\slash\\",
    "u": "\\u0041 literal",
    "ctl": "\x00\x01\x1f\x7f\x85\x9f",
    "uni": "héllo 中文 😀 \u2028 \u2029 \ufeff",
    "empty": "",
    "sp": " ",
    "a:b": "colon key",
    "a=b": "eq key",
    " space key": "v",
    "#k": "hash key",
    "!k": "bang key",
    "k\tt": "tab key",
    "k\\": "bs key",
    "emoji😀": "x",
}

# Lines java.util.Properties.store(Writer) wrote for PROPERTIES_ITEMS (OpenJDK 17),
# except "ctl", where the contract asks for \uXXXX rather than raw control characters.
JAVA_STORE_LINES = [
    "\\ space\\ key=v",
    "\\!k=bang key",
    "\\#k=hash key",
    "a=plain",
    "a\\:b=colon key",
    "a\\=b=eq key",
    "bang=\\!not a comment",
    "bs=back\\\\slash\\\\",
    "ctl=\\u0000\\u0001\\u001F\\u007F\\u0085\\u009F",
    "emoji😀=x",
    "empty=",
    "eq=a\\=b\\:c d\\#e\\!f",
    "ff=\\fform feed",
    "hash=\\#not a comment",
    "k\\tt=tab key",
    "k\\\\=bs key",
    "lead=\\  two leading spaces",
    "nl=line1\\nline2\\r\\nline3\\rx",
    "sp=\\ ",
    "tabs=\\tleading tab\\tand\\tmore",
    "trail=trailing   ",
    "u=\\\\u0041 literal",
    "uni=héllo 中文 😀 \u2028 \u2029 \ufeff",
]


def test_properties_matches_java_store() -> None:
    text = body_of("properties", PROPERTIES_ITEMS)
    assert text == "".join(line + "\n" for line in JAVA_STORE_LINES)


def test_properties_round_trips() -> None:
    assert parse_properties(body_of("properties", PROPERTIES_ITEMS)) == PROPERTIES_ITEMS


def test_properties_one_line_per_item_sorted() -> None:
    items = {"b": "2", "a.x": "1", "B": "0", "c": "multi\nline"}
    text = body_of("properties", items)
    assert text == "B=0\na.x=1\nb=2\nc=multi\\nline\n"
    assert parse_properties(text) == items


def test_properties_content_type_and_empty() -> None:
    body, content_type = render("properties", "shop", "prod", 1, CHECKSUM, {})
    assert (body, content_type) == (b"", "text/plain; charset=utf-8")


@pytest.mark.parametrize("char", [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]])
def test_properties_every_control_character_round_trips(char: str) -> None:
    items = {"k": f"{char}x{char}", f"k{char}": char}
    text = body_of("properties", items)
    assert text.count("\n") == 2
    assert "\r" not in text
    assert parse_properties(text) == items


# --- yaml -----------------------------------------------------------------------
YAML_KEYS = [
    "yes", "no", "Yes", "NO", "on", "Off", "y", "N", "true", "False", "null", "NULL",
    "1", "1.0", "0x1f", "0o17", "017", "1e3", "1_000", "1:20", "2001-12-14", ".inf",
    ".nan", "-", "-a", ":", "a:b", "::", "/", "---", "...", ".", "_", "db.url", "a/b",
    "feature-flag", "DB_URL", "Z", "a b", "#", "a #b", "é", "\"q'", "k\n", "",
]  # fmt: skip
YAML_VALUES = [
    "yes", "No", "null", "~", "", "1.0", "1", "0x10", ":", "a: b", "#", "a #b", "'",
    '"', "\\", "\\n", "\n", "\r\n", "\r", " lead", "trail ", "\t", "tab\tin", "héllo",
    "中文", "😀", "\x00", "\x07\x08\x0b\x0c\x1b", "\x7f", "\x85", "\x9f", "\u2028",
    "\u2029", "\ufeff", "\ufffe", "- item", "{a: b}", "[1]", "&anchor", "*alias", "!tag",
    "%", "@", "`", "|", ">", "---", "...", "a\n\nb", "  \n  ", "<>&",
]  # fmt: skip


def test_yaml_tricky_keys_round_trip() -> None:
    items = {key: f"value of {key}" for key in YAML_KEYS}
    assert yaml.safe_load(body_of("yaml", items)) == items


def test_yaml_tricky_values_round_trip() -> None:
    items = {f"k{i}": value for i, value in enumerate(YAML_VALUES)}
    assert yaml.safe_load(body_of("yaml", items)) == items


@pytest.mark.parametrize("char", [chr(c) for c in [*range(0xA0), 0x2028, 0x2029, 0xFEFF]])
def test_yaml_every_low_character_round_trips(char: str) -> None:
    items = {"k": f"{char}x{char}"}
    assert yaml.safe_load(body_of("yaml", items)) == items


def test_yaml_exact_output() -> None:
    items = {
        "db.url": "postgres://h:5432/db",
        "yes": "no",
        "1.0": "x",
        "a:b": 'say "hi"\n',
        "ctl": "\x00\x85\u2028\t\\",
        "uni": "é😀",
    }
    assert body_of("yaml", items) == (
        '"1.0": "x"\n'
        '"a:b": "say \\"hi\\"\\n"\n'
        'ctl: "\\0\\N\\L\\t\\\\"\n'
        'db.url: "postgres://h:5432/db"\n'
        'uni: "é😀"\n'
        '"yes": "no"\n'
    )


def test_yaml_values_are_always_strings() -> None:
    items = {"a": "1", "b": "true", "c": "null", "d": "1.5", "e": ""}
    loaded = yaml.safe_load(body_of("yaml", items))
    assert loaded == items
    assert all(isinstance(value, str) for value in loaded.values())


def test_yaml_empty_and_content_type() -> None:
    body, content_type = render("yaml", "shop", "prod", 1, CHECKSUM, {})
    assert (body, content_type) == (b"{}\n", "application/yaml")
    assert yaml.safe_load(body) == {}


def test_yaml_no_nesting_on_dots() -> None:
    items = {"a.b": "1", "a.c": "2", "a": "3"}
    assert yaml.safe_load(body_of("yaml", items)) == items


# --- dotenv ---------------------------------------------------------------------
def test_dotenv_exact_output() -> None:
    items = {
        "db.url": "postgres://h/db",
        "feature-flag": "on",
        "path/to:x": "a",
        "Mixed_Case9": 'q"b\\n\nend',
        "empty": "",
        "uni": "é $HOME 'x'",
    }
    body, content_type = render("dotenv", "shop", "prod", 1, CHECKSUM, items)
    assert content_type == "text/plain; charset=utf-8"
    assert body.decode() == (
        'MIXED_CASE9="q\\"b\\\\n\nend"\n'
        "DB_URL='postgres://h/db'\n"
        "EMPTY=''\n"
        "FEATURE_FLAG='on'\n"
        "PATH_TO_X='a'\n"
        "UNI=\"é \\$HOME 'x'\"\n"
    )


def test_dotenv_names() -> None:
    assert dotenv_name("db.url") == "DB_URL"
    assert dotenv_name("a-b:c/d.e_f") == "A_B_C_D_E_F"
    assert dotenv_name("ABC_123") == "ABC_123"
    assert dotenv_name("9lives") == "_9LIVES"


def test_dotenv_conflict_names_both_keys() -> None:
    items = {"db.url": "1", "db-url": "2", "other": "3"}
    with pytest.raises(AppError) as err:
        render("dotenv", "shop", "prod", 1, CHECKSUM, items)
    assert (err.value.code, err.value.status) == ("format_conflict", 409)
    assert "'db-url'" in err.value.message
    assert "'db.url'" in err.value.message
    assert "DB_URL" in err.value.message


def test_dotenv_case_conflict() -> None:
    with pytest.raises(AppError) as err:
        render("dotenv", "shop", "prod", 1, CHECKSUM, {"key": "1", "KEY": "2"})
    assert err.value.code == "format_conflict"


def test_dotenv_empty() -> None:
    assert render("dotenv", "shop", "prod", 1, CHECKSUM, {})[0] == b""


# --- json and dispatch -----------------------------------------------------------
def test_json_shape_and_bytes() -> None:
    items = {"b": "<&>", "a": "é😀\u2028"}
    body, content_type = render("json", "shop", "prod", 3, CHECKSUM, items)
    assert content_type == "application/json"
    assert json.loads(body) == {
        "app": "shop",
        "env": "prod",
        "version": 3,
        "checksum": CHECKSUM,
        "items": items,
    }
    assert (
        body
        == (
            '{"app":"shop","env":"prod","version":3,"checksum":"' + CHECKSUM + '",'
            '"items":{"a":"é😀\u2028","b":"<&>"}}'
        ).encode()
    )


def test_json_empty_items() -> None:
    body, _ = render("json", "shop", "prod", 1, CHECKSUM, {})
    assert json.loads(body)["items"] == {}


@pytest.mark.parametrize("fmt", ["xml", "JSON", "", "toml", "json ", "a" * 500])
def test_unknown_format(fmt: str) -> None:
    with pytest.raises(AppError) as err:
        render(fmt, "shop", "prod", 1, CHECKSUM, {"a": "1"})
    assert (err.value.code, err.value.status) == ("invalid_format", 400)
    assert "json, properties, yaml, dotenv" in err.value.message
    assert len(err.value.message) < 200


def test_formats_constant() -> None:
    assert FORMATS == ("json", "properties", "yaml", "dotenv")
    for fmt in FORMATS:
        body, content_type = render(fmt, "shop", "prod", 1, CHECKSUM, {"a.b": "c"})
        assert isinstance(body, bytes)
        assert content_type


HOSTILE_VALUES = {
    "subst": "$(touch {canary})",
    "backticks": "`touch {canary}`",
    "braces": "${HOME}",
    "dollar": "$HOME and $1 and $$",
    "single": "it's 'quoted'",
    "double": 'say "hi"',
    "backslash": "C:\\dir\\n\\",
    "newlines": "line one\nline two\n",
    "carriage": "a\rb\r\n",
    "controls": "bell\a tab\t esc\x1b del\x7f",
    "mixed": 'it\'s $(touch {canary}) `x` ${HOME} \\ "q"',
    "trailing_backslash": "ends with \\",
    "semicolon": "x; touch {canary}",
    "empty": "",
}


def _sourced_by_sh(dotenv_file: Path, names: list[str]) -> dict[str, str]:
    script = 'set -a; . "$1"; shift; for n in "$@"; do eval "printf \'%s\\0\' \\"\\$$n\\""; done'
    result = subprocess.run(
        ["sh", "-c", script, "sh", str(dotenv_file), *names],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"},
        timeout=10,
    )
    values = result.stdout.decode().split("\0")[:-1]
    return dict(zip(names, values, strict=True))


def test_dotenv_sourced_by_sh_sets_exact_values_and_runs_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    items = {key: value.replace("{canary}", str(canary)) for key, value in HOSTILE_VALUES.items()}
    body, _ = render("dotenv", "shop", "prod", 1, CHECKSUM, items)
    dotenv_file = tmp_path / "config.env"
    dotenv_file.write_bytes(body)

    sourced = _sourced_by_sh(dotenv_file, [dotenv_name(key) for key in items])

    assert sourced == {dotenv_name(key): value for key, value in items.items()}
    assert not canary.exists()


# python-dotenv cannot hold a carriage return read from a file (it reads with universal
# newlines), nor a backslash before $ or ` in double quotes: those values are exact in sh only.
_DOTENV_UNREADABLE = {"carriage", "mixed"}


def test_dotenv_read_by_python_dotenv_gives_the_same_values(tmp_path: Path) -> None:
    items = {k: v.replace("{canary}", "/tmp/x") for k, v in HOSTILE_VALUES.items()}
    body, _ = render("dotenv", "shop", "prod", 1, CHECKSUM, items)
    dotenv_file = tmp_path / "config.env"
    dotenv_file.write_bytes(body)

    read = dotenv_values(dotenv_file, interpolate=False)

    expected = {dotenv_name(k): v for k, v in items.items() if k not in _DOTENV_UNREADABLE}
    assert {name: read[name] for name in expected} == expected
    assert set(read) == {dotenv_name(k) for k in items}
