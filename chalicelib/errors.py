"""One error tree for the whole project."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(LakehouseError):
    """A configuration file is wrong; the message names file, key and value."""

    def __init__(self, file: str, key: str, value: object, problem: str) -> None:
        self.file, self.key, self.value, self.problem = file, key, value, problem
        super().__init__(f"{file}: {key} = {value!r}: {problem}")


class LedgerError(LakehouseError):
    """The file ledger could not be read or written."""


class FileInProgressError(LedgerError):
    """Another worker holds the lease on this file; the event is retried later."""


class LocalStageError(LakehouseError):
    """The embedded local stage is not running or could not be started."""
