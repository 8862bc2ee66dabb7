"""One error tree for the whole project: every error it raises on purpose is a `LakehouseError`.

The CLI prints any of them as one line and exits 1; the HTTP API answers each with its `http_status` and a JSON
body (`{"Code": ..., "Message": ...}`), never Chalice's bare 500. A request the caller can fix is a 4xx; anything
else behind an answer (the ledger, a query, the published configuration) is a 503.
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base of every error this project raises on purpose."""

    http_status = 503  # behind an API route: the service cannot answer now, and the message says why


class UsageError(LakehouseError):
    """A request or command parameter that cannot be used; `parameter` names it."""

    http_status = 400

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter


class NotFoundError(LakehouseError):
    """Something asked for by name does not exist (a recorded change, a table, a pipeline run)."""

    http_status = 404


class ConfigError(LakehouseError):
    """A configuration or definition file is wrong; the message names file, key and value."""

    def __init__(self, file: str, key: str, value: object, problem: str) -> None:
        self.file, self.key, self.value, self.problem = file, key, value, problem
        super().__init__(f"{file}: {key} = {value!r}: {problem}")

    def under(self, folder: str) -> ConfigError:
        """The same error with its file named under `folder` (`lakehouse.toml` -> `config/lakehouse.toml`)."""
        if self.file.startswith("/") or "://" in self.file:  # named in full already
            return self
        moved = type(self).__new__(type(self))  # not copy.copy: it would call __init__ with the message alone
        moved.__dict__.update(self.__dict__)
        moved.file = f"{folder.rstrip('/')}/{self.file}" if folder not in ("", ".") else self.file
        moved.args = (str(self).replace(self.file, moved.file, 1),)
        return moved


class ConfigSyntaxError(ConfigError):
    """A configuration file its format's parser cannot read: the message is `file:line:column: parser's message`."""

    def __init__(self, file: str, line: int, column: int, problem: str) -> None:
        LakehouseError.__init__(self, f"{file}:{line}:{column}: {problem}")
        self.file, self.key, self.value, self.problem = file, "(syntax)", None, problem
        self.line, self.column = line, column


class LedgerError(LakehouseError):
    """The file ledger could not be read or written."""


class FileInProgressError(LedgerError):
    """Another worker holds the lease on this file; the event is retried later."""


class Rejected(LakehouseError):
    """A file is not acceptable; `code` is machine-readable, `line` is 1-based where one applies."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.line = code, message, line


class QueryError(LakehouseError):
    """A query that was refused, failed or timed out; the message says which and why."""


class InvalidEvent(LakehouseError):
    """A Lambda was invoked with an event it cannot use (a wiring mistake, said plainly)."""


class BatchFailed(LakehouseError):
    """Some records of an SQS batch failed; the whole batch is retried (finished records are no-ops)."""


class PipelineError(LakehouseError):
    """A pipeline run or one of its steps cannot go on (an unknown run, a copy that came out wrong)."""


class TableError(LakehouseError):
    """A Delta table cannot be written or restored as asked; the message says what to do."""


class DeploymentError(LakehouseError):
    """Deploying or tearing down a stage stopped; the message names the resource."""


class LocalStageError(LakehouseError):
    """The embedded local stage is not running or could not be started."""
