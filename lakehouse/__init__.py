"""The `lakehouse` command: the CLI, the embedded local stage and its executor, sample data."""

from typing import Any


def connect(stage: str = "local") -> Any:
    """The stage's lake from Python: `lakehouse.connect("local").sql("SELECT ...")` is a pandas DataFrame
    (lakehouse.connection.Connection). Imported on first use: the CLI does not load pandas."""
    from lakehouse.connection import Connection

    return Connection.open(stage)
