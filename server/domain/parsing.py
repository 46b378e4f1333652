"""Read a file of items in one of the formats formats.py renders: json, properties, yaml, dotenv.

Each format is read by a well-kept library (orjson, jproperties, PyYAML's safe loader,
python-dotenv), so that a file written by hand or by another tool means what it means there;
what is added here is the checks of an item (key pattern, value a string within the limit) and
error messages that name the line. Whatever the format, the result is a flat {key: value} or
one AppError(invalid_import); a key given twice keeps its last value, as each loader does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import dotenv
import dotenv.parser
import jproperties
import orjson
import yaml

from server.domain.formats import FORMATS
from server.domain.validation import KEY_PATTERN, KEY_RULE
from server.errors import AppError, ErrorCode

# How much of a rejected key or line an error message quotes back.
_SHOW_CHARS = 40

# java.util.Properties ends a line at \n, \r or \r\n only (not at U+2028, NEL, VT or FF,
# which str.splitlines would split on).
_PROPERTIES_LINE = re.compile(r"\r\n|\r|\n")
_PROPERTIES_BLANK = " \t\f"


_KIND = {int: "a number", float: "a number", bool: "a boolean", list: "a list", dict: "a mapping"}


def _show(text: str) -> str:
    return repr(text[:_SHOW_CHARS]) + ("…" if len(text) > _SHOW_CHARS else "")


def _refuse(where: str, problem: str) -> AppError:
    return AppError(ErrorCode.INVALID_IMPORT, f"{where}: {problem}; nothing was imported")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(f"byte {exc.start}", "the file is not UTF-8") from None


def check_entry(key: object, value: object, where: str, max_value_bytes: int) -> tuple[str, str]:
    """One item of a file: a key of the item pattern and a string value within the limit."""
    if not isinstance(key, str):
        raise _refuse(where, f"a key must be a string, not a {type(key).__name__}")
    if KEY_PATTERN.fullmatch(key) is None:
        raise _refuse(where, f"key {_show(key)} is invalid: {KEY_RULE}")
    if not isinstance(value, str):
        kind = "null" if value is None else _KIND.get(type(value), f"a {type(value).__name__}")
        raise _refuse(where, f"the value of {key} must be a string, not {kind} (quote it)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refuse(where, f"the value of {key} is not valid Unicode") from None
    if size > max_value_bytes:
        raise _refuse(
            where, f"the value of {key} is {size} bytes in UTF-8; the limit is {max_value_bytes}"
        )
    return key, value


def parse_file(fmt: str, data: bytes, max_value_bytes: int) -> dict[str, str]:
    """The items a file holds, checked; AppError(invalid_import) naming the first bad line."""
    if fmt not in FORMATS:
        raise AppError(
            ErrorCode.INVALID_FORMAT,
            f"format must be one of {', '.join(FORMATS)}, not {_show(fmt)}",
        )
    if fmt == "json":
        return _parse_json(data, max_value_bytes)
    text = _decode(data)
    if fmt == "properties":
        return _parse_properties(text, max_value_bytes)
    if fmt == "yaml":
        return _parse_yaml(text, max_value_bytes)
    return _parse_dotenv(text, max_value_bytes)


# --- json -----------------------------------------------------------------------
def _parse_json(data: bytes, max_value_bytes: int) -> dict[str, str]:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _refuse(f"line {exc.lineno}", f"not valid JSON ({exc.msg})") from None
    if isinstance(raw, dict) and isinstance(raw.get("items"), dict):
        raw = raw["items"]  # the answer of GET …/config, as it was exported
    if not isinstance(raw, dict):
        raise _refuse("the file", "a json import is one flat object of strings")
    return dict(check_entry(k, v, f"key {_show(k)}", max_value_bytes) for k, v in raw.items())


# --- properties -----------------------------------------------------------------
def _properties_entries(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, raw text) of each key-value entry, continuations included."""
    lines = _PROPERTIES_LINE.split(text)
    number = 0
    while number < len(lines):
        start = number
        line = lines[number]
        number += 1
        stripped = line.lstrip(_PROPERTIES_BLANK)
        if not stripped or stripped[0] in "#!":
            continue  # a comment never continues, whatever it ends with
        parts = [line]
        while _continues(line) and number < len(lines):
            line = lines[number]
            number += 1
            parts.append(line)
        yield start + 1, "\n".join(parts)


def _continues(line: str) -> bool:
    """A line ending with an odd number of backslashes goes on on the next line."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _load_properties(text: str) -> jproperties.Properties:
    loaded = jproperties.Properties()
    loaded.load(text)
    return loaded


def _parse_properties(text: str, max_value_bytes: int) -> dict[str, str]:
    try:
        loaded = _load_properties(text)
    except jproperties.ParseError as exc:
        raise _refuse(f"line {exc.line_number}", f"not a properties line ({exc.message})") from None
    items = {key: entry.data for key, entry in loaded.items()}
    for key, value in items.items():
        try:
            check_entry(key, value, "", max_value_bytes)
        except AppError:
            # The rare path: find the line that gave this key (the loader does not keep it).
            check_entry(key, value, f"line {_properties_line_of(text, key)}", max_value_bytes)
    return items


def _properties_line_of(text: str, key: str) -> int | str:
    """The line of the last entry giving key (it is the one that counts)."""
    found: int | str = "?"
    for number, entry in _properties_entries(text):
        if key in _load_properties(entry):
            found = number
    return found


# --- yaml -----------------------------------------------------------------------
def _parse_yaml(text: str, max_value_bytes: int) -> dict[str, str]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "the file"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise _refuse(where, f"not valid YAML ({problem})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _refuse("the file", "a yaml import is one flat mapping of strings")
    lines: dict[object, int] | None = None
    items: dict[str, str] = {}
    for key, value in raw.items():
        try:
            items.update([check_entry(key, value, "", max_value_bytes)])
        except AppError:
            lines = lines if lines is not None else _yaml_key_lines(text)
            check_entry(key, value, f"line {lines.get(key, '?')}", max_value_bytes)
    return items


def _yaml_key_lines(text: str) -> dict[object, int]:
    """The line of each top-level key, read by the same safe loader (the rare, error path)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if not isinstance(node, yaml.MappingNode):
            return {}
        found: dict[object, int] = {}
        for key_node, _ in node.value:
            try:
                found[loader.construct_object(key_node, deep=True)] = key_node.start_mark.line + 1
            except (yaml.YAMLError, TypeError):
                continue  # an unhashable key: the message shows no line for it
        return found
    finally:
        loader.dispose()


# --- dotenv ---------------------------------------------------------------------
def _parse_dotenv(text: str, max_value_bytes: int) -> dict[str, str]:
    line_of: dict[str, int] = {}
    for binding in dotenv.parser.parse_stream(io.StringIO(text)):
        # A binding's text starts with the blank lines before it.
        raw = binding.original.string
        line = binding.original.line + raw[: len(raw) - len(raw.lstrip())].count("\n")
        where = f"line {line}"
        if binding.error:
            first = binding.original.string.splitlines()[0] if binding.original.string else ""
            raise _refuse(where, f"not a dotenv line: {_show(first)}")
        if binding.key is None:
            continue  # blank or comment
        if binding.value is None:
            raise _refuse(where, f"{binding.key} has no value (write {binding.key}=)")
        line_of[binding.key] = line
    # The values as python-dotenv's own reader gives them, without ${…} interpolation.
    values = dotenv.dotenv_values(stream=io.StringIO(text), interpolate=False)
    return dict(
        check_entry(k, v, f"line {line_of.get(k, '?')}", max_value_bytes) for k, v in values.items()
    )
