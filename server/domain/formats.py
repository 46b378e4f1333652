"""Render a release's items as json, Java .properties, YAML or dotenv."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import orjson

from server.errors import AppError, ErrorCode

FORMATS = ("json", "properties", "yaml", "dotenv")

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
YAML_TYPE = "application/yaml"

# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]


def _escaper(table: Mapping[int, str]) -> Callable[[str], str]:
    """A function replacing each character in table by its escape."""
    # A regex touches only the characters that need escaping; str.translate with a
    # dict looks up every character and is several times slower on typical values.
    by_char = {chr(c): escape for c, escape in table.items()}
    pattern = re.compile("[" + "".join(re.escape(c) for c in sorted(by_char)) + "]")
    lookup = by_char.__getitem__

    def escape(text: str) -> str:
        return pattern.sub(lambda m: lookup(m.group()), text)

    return escape


# --- properties -----------------------------------------------------------------
# Mirrors java.util.Properties.store: \t \n \r \f by name, = : # ! escaped anywhere
# (so a key or value never starts a comment or ends a key early), other control
# characters as \uXXXX. Non-ASCII stays as itself: the body is UTF-8.
_PROPERTIES_VALUE: dict[int, str] = {c: f"\\u{c:04X}" for c in _CONTROLS}
_PROPERTIES_VALUE.update(
    {ord(c): "\\" + c for c in "\\=:#!"}
    | {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r", ord("\f"): "\\f"}
)
# A space ends a key, so every space in a key is escaped; in a value only a leading
# one is (the loader skips whitespace before a value).
_PROPERTIES_KEY = {**_PROPERTIES_VALUE, ord(" "): "\\ "}
_escape_properties_value = _escaper(_PROPERTIES_VALUE)
_escape_properties_key = _escaper(_PROPERTIES_KEY)


def _properties_line(key: str, value: str) -> str:
    escaped = _escape_properties_value(value)
    if escaped.startswith(" "):
        escaped = "\\" + escaped
    return f"{_escape_properties_key(key)}={escaped}\n"


# --- yaml -----------------------------------------------------------------------
# Double-quoted scalars: escape the quote, the backslash, everything YAML does not
# allow as printable, and the characters YAML 1.1 treats as line breaks (NEL, LS,
# PS), which would otherwise be folded into spaces.
_YAML_NAMED = {
    0x00: "\\0",
    0x07: "\\a",
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0B: "\\v",
    0x0C: "\\f",
    0x0D: "\\r",
    0x1B: "\\e",
    0x22: '\\"',
    0x5C: "\\\\",
    0x85: "\\N",
    0x2028: "\\L",
    0x2029: "\\P",
}
_YAML_ESCAPES: dict[int, str] = {c: f"\\x{c:02X}" for c in _CONTROLS}
_YAML_ESCAPES.update({c: f"\\u{c:04X}" for c in (0xFEFF, 0xFFFE, 0xFFFF)})
_YAML_ESCAPES.update(_YAML_NAMED)
_escape_yaml = _escaper(_YAML_ESCAPES)

# A key may go unquoted when it cannot be read as anything but this string: it starts
# with a letter or underscore (so never a number, date, or indicator), holds no ':'
# and is not a YAML 1.1 boolean or null word.
_YAML_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*", re.ASCII)
_YAML_RESERVED = frozenset(("y", "n", "yes", "no", "true", "false", "on", "off", "null"))


def _yaml_quote(text: str) -> str:
    return '"' + _escape_yaml(text) + '"'


def _yaml_key(key: str) -> str:
    if _YAML_PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_RESERVED:
        return key
    return _yaml_quote(key)


# --- dotenv ---------------------------------------------------------------------
# Inside double quotes POSIX sh still expands $, ` and \; escaped, they are taken literally.
_escape_dotenv_double = _escaper(
    {ord("\\"): "\\\\", ord('"'): '\\"', ord("$"): "\\$", ord("`"): "\\`"}
)
# Single quotes are read literally by sh and python-dotenv alike, except for these.
_NOT_SINGLE_QUOTABLE = frozenset("'\\\r")
_DOTENV_NAME_JUNK = re.compile(r"[^A-Z0-9_]")


def dotenv_name(key: str) -> str:
    """The variable name for key: upper-cased, anything outside A-Z0-9_ made '_'.

    A leading digit gets a '_' before it, so that the name is a valid shell variable.
    """
    name = _DOTENV_NAME_JUNK.sub("_", key.upper())
    return f"_{name}" if name[:1].isdigit() else name


def dotenv_quote(value: str) -> str:
    """value quoted so that `set -a; . ./file` in POSIX sh yields exactly it and runs nothing.

    Single quotes when they can hold the value (python-dotenv then reads the same); else
    double quotes with every character sh would expand escaped.
    """
    if _NOT_SINGLE_QUOTABLE.isdisjoint(value):
        return f"'{value}'"
    return f'"{_escape_dotenv_double(value)}"'


# --- renderers ------------------------------------------------------------------
def _render_json(
    app: str, env: str, version: int, checksum: str, items: Mapping[str, str]
) -> bytes:
    body = {
        "app": app,
        "env": env,
        "version": version,
        "checksum": checksum,
        "items": {k: items[k] for k in sorted(items)},
    }
    return orjson.dumps(body)


def _render_properties(
    app: str, env: str, version: int, checksum: str, items: Mapping[str, str]
) -> bytes:
    return "".join(_properties_line(k, items[k]) for k in sorted(items)).encode("utf-8")


def _render_yaml(
    app: str, env: str, version: int, checksum: str, items: Mapping[str, str]
) -> bytes:
    if not items:
        return b"{}\n"
    lines = (f"{_yaml_key(k)}: {_yaml_quote(items[k])}\n" for k in sorted(items))
    return "".join(lines).encode("utf-8")


def _render_dotenv(
    app: str, env: str, version: int, checksum: str, items: Mapping[str, str]
) -> bytes:
    seen: dict[str, str] = {}
    lines = []
    for key in sorted(items):
        name = dotenv_name(key)
        if name in seen:
            raise AppError(
                ErrorCode.FORMAT_CONFLICT,
                f"keys {seen[name]!r} and {key!r} both become {name} in dotenv",
            )
        seen[name] = key
        lines.append(f"{name}={dotenv_quote(items[key])}\n")
    return "".join(lines).encode("utf-8")


_Renderer = Callable[[str, str, int, str, Mapping[str, str]], bytes]
_RENDERERS: dict[str, tuple[_Renderer, str]] = {
    "json": (_render_json, JSON_TYPE),
    "properties": (_render_properties, TEXT_TYPE),
    "yaml": (_render_yaml, YAML_TYPE),
    "dotenv": (_render_dotenv, TEXT_TYPE),
}


def content_type_of(fmt: str) -> str:
    """The content type of a known format's answers."""
    return _RENDERERS[fmt][1]


def render(
    fmt: str, app: str, env: str, version: int, checksum: str, items: Mapping[str, str]
) -> tuple[bytes, str]:
    """A release rendered in fmt: (body, content type); an unknown fmt is a 400."""
    try:
        renderer, content_type = _RENDERERS[fmt]
    except KeyError:
        shown = repr(fmt[:20]) + ("…" if len(fmt) > 20 else "")
        raise AppError(
            ErrorCode.INVALID_FORMAT, f"format {shown} is unknown; use one of {', '.join(FORMATS)}"
        ) from None
    return renderer(app, env, version, checksum, items), content_type
