"""The one typed reader of the project's TOML: configuration, dataset contracts, quality rules and lifecycle
definitions are decoded into msgspec Structs, which check types, bounds, patterns, choices and unknown keys.
Every mistake is a ConfigError naming the file, the dotted key and the value it holds there.

msgspec rather than pydantic: it decodes straight into typed classes, names the path of a bad key in its errors,
and imports in about a third of the time (it is imported on first use, never when `app.py` is imported).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any, TypeVar

from chalicelib.errors import ConfigError, ConfigSyntaxError

T = TypeVar("T")
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PLACE = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def read(file: str, data: Any, type_: type[T], *, at: str = "", what: str = "") -> T:
    """`data` (a TOML table, or part of one at dotted key `at`) as `type_`; a mistake is a ConfigError (an unknown
    key's names `what` the table is, when given: "a range rule")."""
    import msgspec

    try:
        return msgspec.convert(data, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise _config_error(file, data, type_, str(exc), at, what) from None


def join(at: str, key: str) -> str:
    """The dotted key `key` under `at` (`rules[0]` + `column` -> `rules[0].column`)."""
    return f"{at}.{key}" if at and key and not key.startswith("[") else f"{at}{key}"


class Where:
    """A place in a file (its dotted key) where a check done by hand can fail, as the typed reader's would."""

    def __init__(self, file: str, at: str = "") -> None:
        self.file, self.at = file, at

    def fail(self, key: str, value: object, problem: str) -> ConfigError:
        """A ConfigError for `key` under this place."""
        return ConfigError(self.file, join(self.at, key) or "(top level)", value, problem)

    def column_list(self, key: str, names: list[str], columns: Mapping[str, Any]) -> tuple[str, ...]:
        """`names` at `key`: a non-empty list of the contract's `columns`."""
        if not names:
            raise self.fail(key, [], "needs at least one column")
        for column in names:
            if column not in columns:
                raise self.fail(key, list(names), f"column {column!r} is not in [columns]")
        return tuple(names)


def _config_error(file: str, data: Any, type_: Any, text: str, at: str, what: str = "") -> ConfigError:
    import msgspec

    match = _AT.match(text)
    message, path = (match["message"], match["path"] or "") if match else (text, "")
    tokens: list[str | int] = []
    for name, index in _TOKEN.findall(path):
        if index == "...":  # a value under a table's key: msgspec does not say which key, so name the table
            break
        tokens.append(name if name else int(index))
    value, kind = data, msgspec.inspect.type_info(type_)
    for token in tokens:
        if isinstance(value, dict):
            value = value.get(token)
        elif isinstance(value, list) and isinstance(token, int) and token < len(value):
            value = value[token]
        else:
            value = None
        kind = _inner(kind, token)
    key = "".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in tokens).lstrip(".")
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    missing = re.match(r"Object missing required field `(.+)`", message)
    if unknown:
        fields = sorted(f.encode_name for f in getattr(_bare(kind), "fields", ()))
        field = unknown[1]
        return ConfigError(
            file,
            join(at, join(key, field)),
            value.get(field) if isinstance(value, dict) else None,
            f"unknown key{' of ' + what if what and not key else ''}; expected one of {fields}",
        )
    if missing:
        return ConfigError(file, join(at, join(key, missing[1])), None, "is required")
    return ConfigError(file, join(at, key) or "(top level)", value, _expected(_bare(kind)) or message)


def _bare(kind: Any) -> Any:
    """The type behind an Optional and behind metadata."""
    import msgspec.inspect as mi

    if isinstance(kind, mi.Metadata):
        return _bare(kind.type)
    if isinstance(kind, mi.UnionType):
        real = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        return _bare(real[0]) if len(real) == 1 else kind
    return kind


def _inner(kind: Any, token: str | int) -> Any:
    """The type of `token` (a field name or an index) inside `kind`."""
    import msgspec.inspect as mi

    kind = _bare(kind)
    if isinstance(kind, mi.StructType | mi.DataclassType):
        return next((f.type for f in kind.fields if f.encode_name == token), mi.AnyType())
    if isinstance(kind, mi.ListType | mi.VarTupleType | mi.DictType):
        return kind.value_type if isinstance(kind, mi.DictType) else kind.item_type
    return mi.AnyType()


def _expected(kind: Any) -> str:
    """What a value of `kind` must be, in words ('' where msgspec's own message says it better)."""
    import msgspec.inspect as mi

    def bounds(t: Any) -> str:
        low = t.ge if t.ge is not None else t.gt
        high = t.le if t.le is not None else t.lt
        if low is not None and high is not None:
            return f" from {low:g} to {high:g}"
        return f", at least {low:g}" if low is not None else (f", at most {high:g}" if high is not None else "")

    if isinstance(kind, mi.LiteralType):
        return f"must be one of {list(kind.values)}"
    if isinstance(kind, mi.BoolType):
        return "must be true or false"
    if isinstance(kind, mi.IntType):
        return "must be a whole number" + bounds(kind)
    if isinstance(kind, mi.FloatType):
        return "must be a number" + bounds(kind)
    if isinstance(kind, mi.StrType):
        if kind.pattern:
            return f"must match {kind.pattern.removeprefix('^').removesuffix('$')}"
        return "must be a string" + (f" of at least {kind.min_length} characters" if kind.min_length else "")
    if isinstance(kind, mi.ListType | mi.VarTupleType):  # a TOML array, decoded as a list or a tuple
        item = _bare(kind.item_type)
        if isinstance(item, mi.StructType | mi.DictType):
            return "must be a list of tables (an array of tables: [[...]], or [{ ... }, { ... }])"
        return "must be a list of strings" if isinstance(item, mi.StrType) else "must be a list"
    if isinstance(kind, mi.DictType):
        return "must be a table" + (" of strings" if isinstance(_bare(kind.value_type), mi.StrType) else "")
    if isinstance(kind, mi.StructType | mi.DataclassType):
        return f"must be a table; it takes {', '.join(sorted(f.encode_name for f in kind.fields))}"
    return ""


def parse_toml(file: str, text: str) -> dict[str, Any]:
    """A TOML file's tables; a syntax error names the file, line and column and says tomllib's message."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11-3.13 give the place only inside the message: "(at line 2, column 7)" or "(at end of document)"
        place = _PLACE.search(str(exc))
        if place and place[1]:
            line, column = int(place[1]), int(place[2])
        else:
            line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
        message = _PLACE.sub("", str(exc)).strip()
        raise ConfigSyntaxError(file, line, column, f"not valid TOML: {message}") from None


def text_of(file: str, data: str | bytes) -> str:
    """A configuration or definition file's text; bytes that are not UTF-8 are refused naming the file and where."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "(encoding)", None, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
