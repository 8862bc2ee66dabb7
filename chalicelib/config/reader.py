"""Typed, checked reading of TOML tables: every error names the file, the dotted key and the value."""

from __future__ import annotations

import builtins
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.errors import ConfigError


class Table:
    """Typed, checked access to one TOML table; every error carries file and dotted key."""

    def __init__(self, file: builtins.str, prefix: builtins.str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, prefix or "(top level)", data, "must be a table")
        self.file, self.prefix, self.data = file, prefix, data

    def key(self, name: builtins.str) -> builtins.str:
        """The dotted key of `name` in this table, as errors name it."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: builtins.str, value: object, problem: builtins.str) -> ConfigError:
        """A ConfigError for key `name` of this table."""
        return ConfigError(self.file, self.key(name), value, problem)

    def only(self, allowed: Iterable[str]) -> None:
        """Refuse any key of this table that is not `allowed`."""
        allowed = set(allowed)
        for name in self.data:
            if name not in allowed:
                raise self.fail(name, self.data[name], f"unknown key; expected one of {sorted(allowed)}")

    def table(self, name: builtins.str) -> Table:
        """The sub-table `name` (empty when absent)."""
        return Table(self.file, self.key(name), self.data.get(name, {}))

    def str(
        self,
        name: builtins.str,
        default: builtins.str | None = None,
        *,
        choices: Iterable[str] | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> builtins.str:
        """A string (required unless a default is given), one of `choices` or matching `pattern`."""
        value = self.data.get(name, default)
        if value is None:
            raise self.fail(name, value, "is required")
        if not isinstance(value, builtins.str):
            raise self.fail(name, value, "must be a string")
        if choices is not None and value not in choices:
            raise self.fail(name, value, f"must be one of {list(choices)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(name, value, f"must match {pattern.pattern}")
        return value

    def int(self, name: builtins.str, default: int, *, minimum: int = 0) -> int:
        """An integer of at least `minimum`."""
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, value, "must be an integer")
        if value < minimum:
            raise self.fail(name, value, f"must be at least {minimum}")
        return value

    def number(self, name: builtins.str) -> float | None:
        """An integer or float, or None when absent."""
        value = self.data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.fail(name, value, "must be a number")
        return value

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        """true or false."""
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, value, "must be true or false")
        return value

    def str_list(self, name: builtins.str, default: list[builtins.str] | None = None) -> tuple[builtins.str, ...]:
        """A list of strings (required unless a default is given)."""
        value = self.data.get(name, default)
        if value is None:
            raise self.fail(name, value, "is required")
        if not isinstance(value, list) or not all(isinstance(v, builtins.str) for v in value):
            raise self.fail(name, value, "must be a list of strings")
        return tuple(value)

    def column_list(self, name: builtins.str, columns: Mapping[builtins.str, Any]) -> tuple[builtins.str, ...]:
        """A non-empty list of names of the contract's columns."""
        value = self.str_list(name)
        if not value:
            raise self.fail(name, [], "needs at least one column")
        for column in value:
            if column not in columns:
                raise self.fail(name, list(value), f"column {column!r} is not in [columns]")
        return value


def parse_toml(file: str, text: str) -> dict[str, Any]:
    """A TOML file's tables; a syntax error is a ConfigError naming the line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", None, f"not valid TOML: {exc}") from exc  # exc names line and column


def text_of(file: str, data: str | bytes) -> str:
    """A configuration or definition file's text; bytes that are not UTF-8 are refused naming the file and where."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "(encoding)", None, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
