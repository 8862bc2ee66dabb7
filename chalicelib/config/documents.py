"""The shapes of `lakehouse.toml` and of a dataset contract, as msgspec Structs for the typed reader.

Types, bounds, patterns, choices and unknown keys are checked by decoding; what relates keys to each other (a
primary key names a column, zones differ, a stage's names are derived) is checked by the parser afterwards.
Imported only when a configuration is parsed: `import app` does not load msgspec.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from chalicelib.config.model import BUCKET_NAME, Engine, Limits, PipelineSettings, RetryMode, Zones

Bucket = Annotated[str, Meta(pattern=f"^{BUCKET_NAME}$")]
Region = Annotated[str, Meta(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
Positive = Annotated[int, Meta(ge=1)]


class Document(Struct, forbid_unknown_fields=True, kw_only=True):
    """A TOML table: unknown keys are refused."""


class Project(Document, kw_only=True):
    """`[project]`: the project's name (every resource name starts with it) and its AWS region."""

    name: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]{1,30}$")]
    region: Region


class Tunables(Document, kw_only=True):
    """The stage settings `[ingest]` gives every stage and `[stages.<name>]` may override."""

    retry_mode: RetryMode | None = None
    max_attempts: Positive | None = None
    lease_seconds: Positive | None = None
    queue_visibility_seconds: Annotated[int, Meta(ge=0)] | None = None
    max_receive_count: Positive | None = None
    enforce_tls: bool | None = None


class StageNames(Tunables, kw_only=True):
    """`[stages.<name>]`: every resource name may be set; unset ones are derived from project and stage."""

    region: Region | None = None
    bucket: Bucket | None = None
    log_bucket: Bucket | None = None
    ledger_table: str | None = None
    ingest_queue: str | None = None
    ingest_dlq: str | None = None
    accepted_queue: str | None = None
    alerts_topic: str | None = None
    notifications_topic: str | None = None
    glue_role: str | None = None
    state_machine: str | None = None
    pipeline_role: str | None = None
    athena_workgroup: str | None = None
    glue_database: Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,255}$")] | None = None


def _from_dataclass(name: str, model: Any, kind: Any) -> Any:
    """A document with the model dataclass's fields and defaults, each of type `kind`: one list of fields."""
    document = msgspec.defstruct(
        name,
        [(f.name, kind, f.default) for f in fields(model)],
        bases=(Document,),
        forbid_unknown_fields=True,
        kw_only=True,
    )
    document.__doc__ = f"`[{name.lower()}]`: the fields of {model.__name__}, each {kind}."
    return document


ZonesDoc = _from_dataclass("Zones", Zones, Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_.-]*/$")])
LimitsDoc = _from_dataclass("Limits", Limits, Positive)
PipelineDoc = _from_dataclass("Pipeline", PipelineSettings, Positive)


class SettingsDoc(Document, kw_only=True):
    """`lakehouse.toml`."""

    project: Project
    zones: ZonesDoc = msgspec.field(default_factory=ZonesDoc)  # type: ignore[valid-type]
    limits: LimitsDoc = msgspec.field(default_factory=LimitsDoc)  # type: ignore[valid-type]
    pipeline: PipelineDoc = msgspec.field(default_factory=PipelineDoc)  # type: ignore[valid-type]
    ingest: Tunables = msgspec.field(default_factory=Tunables)
    schedules: dict[str, Annotated[str, Meta(pattern=r"^(cron|rate)\(.+\)$")]] = {}
    stages: dict[str, Any] = {}  # each read as StageNames under its own key


class ColumnDoc(Document, kw_only=True):
    """One column of a contract's `[columns]`."""

    type: str
    nullable: bool = True
    min: int | float | None = None  # numeric columns: rows outside [min, max] are rejected by the ETL
    max: int | float | None = None


class ContractDoc(Document, kw_only=True):
    """A dataset contract, `datasets/<name>.toml`."""

    primary_key: list[str]
    description: str = ""
    formats: list[str] = msgspec.field(default_factory=lambda: ["csv"])
    delimiter: str = ","
    partition_column: str | None = None
    engine: Engine = "auto"  # auto: Spark for a batch of [pipeline] spark_bytes or more
    columns: dict[str, Any] = {}  # each read as ColumnDoc under its own key
    foreign_keys: dict[str, Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]] = {}
    rules: list[dict[str, Any]] = []  # each read as the Struct of its check type (config/rules.py)
