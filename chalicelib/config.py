"""TOML configuration: `lakehouse.toml` and one contract per dataset, validated into frozen dataclasses.

The same parser reads the files from the repository (CLI, tests) and from the lake bucket's `config/`
prefix (Lambdas, which Chalice ships without the repository's `config/` folder). Every error names the
file, the dotted key and the offending value.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chalicelib.errors import ConfigError

SETTINGS_FILE = "lakehouse.toml"
DATASETS_DIR = "datasets"
FORMATS = ("csv", "jsonl")
RETRY_MODES = ("standard", "adaptive", "legacy")
_SIMPLE_TYPES = ("string", "int32", "int64", "double", "bool", "date", "timestamp")
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

Format = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    min: float | None = None  # numeric columns: rows outside [min, max] are rejected by the ETL
    max: float | None = None

    @property
    def numeric(self) -> bool:
        return self.type in ("int32", "int64", "double") or self.type.startswith("decimal")


CHECKS = (
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "pattern",
    "references",
    "freshness",
    "row_count",
    "volume",
)
SEVERITIES = ("warn", "error")


@dataclass(frozen=True)
class Rule:
    """One quality rule of a contract (`[[rules]]`), checked on the processed table before curated/ is published.

    An `error` that fails stops the publish (its dataset's batch is rolled back); a `warn` is reported and
    alerted, and the run goes on."""

    name: str  # unique in its contract; defaults to "<check>(<columns>)"
    check: str
    severity: str = "error"
    columns: tuple[str, ...] = ()  # the column checked (unique: the key columns)
    values: tuple[str, ...] = ()  # accepted_values
    min: float | None = None  # range (column values), row_count (table rows)
    max: float | None = None
    pattern: str | None = None  # the whole value must match (regular expression, RE2/Java common subset)
    references: tuple[str, str] | None = None  # (dataset, column) every non-null value must exist in
    max_age_hours: float | None = None  # freshness: the newest value is at most this old
    max_change_percent: float | None = None  # volume: rows loaded vs the median of earlier loads
    history: int = 10  # volume: how many earlier loads the median is taken over ...
    min_history: int = 3  # ... and how many it needs before it judges

    @property
    def column(self) -> str | None:
        return self.columns[0] if self.columns else None


@dataclass(frozen=True)
class Contract:
    """What a dataset's files must look like, and how its tables are keyed and partitioned."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    formats: tuple[Format, ...] = ("csv",)
    delimiter: str = ","
    partition_column: str | None = None
    description: str = ""
    foreign_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # column -> (dataset, column)
    rules: tuple[Rule, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns a file must carry: the non-nullable ones (a nullable column may be absent)."""
        return tuple(c.name for c in self.columns if not c.nullable)


@dataclass(frozen=True)
class Zones:
    raw: str = "raw/"
    processed: str = "processed/"
    curated: str = "curated/"
    rejected: str = "rejected/"
    archive: str = "archive/"
    athena_results: str = "athena-results/"
    reports: str = "reports/"
    config: str = "config/"

    def rejected_rows(self, dataset: str, batch: int) -> str:
        """The key of a batch's rejected rows (Parquet, one object per batch: a re-run rewrites it)."""
        return f"{self.rejected}{dataset}/rows/batch={batch:06d}/rejected.parquet"


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 5 * 1024**3
    max_decompressed_bytes: int = 20 * 1024**3
    max_compression_ratio: int = 200
    max_line_bytes: int = 1024**2
    max_batch_files: int = 1000  # one ETL batch: at most this many files ...
    max_batch_bytes: int = 2 * 1024**3  # ... and this many bytes (a batch is read into memory)
    athena_bytes_scanned_cutoff: int = 10 * 1024**3  # an Athena query reading more is cancelled (billed per byte)
    access_log_days: int = 90  # the lake bucket's S3 access logs are kept this long


@dataclass(frozen=True)
class PipelineSettings:
    """When accepted files start a pipeline run, and what stops a run before curated/ is published."""

    window_seconds: int = 300  # a run starts once the oldest waiting file has waited this long ...
    start_files: int = 1000  # ... or this many files wait ...
    start_bytes: int = 1024**3  # ... or this many bytes (Glue bills a minimum per job run: batch them)
    max_rejected_percent: int = 10  # quality gate: more rejected rows than this in a dataset batch is an error


@dataclass(frozen=True)
class Stage:
    """Everything one deployment stage needs: names of its resources and its tunables."""

    name: str
    project: str
    region: str
    bucket: str
    ledger_table: str
    ingest_queue: str
    ingest_dlq: str
    accepted_queue: str
    alerts_topic: str
    notifications_topic: str
    retry_mode: str = "standard"
    max_attempts: int = 5
    lease_seconds: int = 960
    queue_visibility_seconds: int = 1800
    max_receive_count: int = 5
    enforce_tls: bool = True  # bucket policy denying plain HTTP; off only for the loopback local stage
    glue_role: str = ""  # IAM role (name or ARN) the Glue jobs run as
    state_machine: str = ""
    pipeline_role: str = ""  # IAM role (name or ARN) the state machine runs as
    glue_database: str = ""  # the Glue catalog database of the stage's tables (raw_*, processed, curated)
    athena_workgroup: str = ""
    log_bucket: str = ""  # where S3 writes the lake bucket's server access logs

    def state_machine_arn(self, account: str) -> str:
        return f"arn:aws:states:{self.region}:{account}:stateMachine:{self.state_machine}"

    def topic_arn(self, topic: str, account: str) -> str:
        return f"arn:aws:sns:{self.region}:{account}:{topic}"


@dataclass(frozen=True)
class Settings:
    project: str
    region: str
    zones: Zones
    limits: Limits
    stages: Mapping[str, Stage]
    datasets: Mapping[str, Contract]
    schedules: Mapping[str, str] = field(default_factory=dict)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise ConfigError(SETTINGS_FILE, "stages", name, f"no such stage; known: {sorted(self.stages)}") from None


class _Table:
    """Typed, checked access to one TOML table; every error carries file and dotted key."""

    def __init__(self, file: str, prefix: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, prefix or "(top level)", data, "must be a table")
        self.file, self.prefix, self.data = file, prefix, data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, value: object, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), value, problem)

    def only(self, allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        for name in self.data:
            if name not in allowed:
                raise self.fail(name, self.data[name], f"unknown key; expected one of {sorted(allowed)}")

    def table(self, name: str) -> _Table:
        return _Table(self.file, self.key(name), self.data.get(name, {}))

    def str(
        self,
        name: str,
        default: str | None = None,
        *,
        choices: Iterable[str] | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = self.data.get(name, default)
        if value is None:
            raise self.fail(name, value, "is required")
        if not isinstance(value, str):
            raise self.fail(name, value, "must be a string")
        if choices is not None and value not in choices:
            raise self.fail(name, value, f"must be one of {list(choices)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(name, value, f"must match {pattern.pattern}")
        return value

    def int(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, value, "must be an integer")
        if value < minimum:
            raise self.fail(name, value, f"must be at least {minimum}")
        return value

    def number(self, name: str) -> float | None:
        value = self.data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.fail(name, value, "must be a number")
        return value

    def bool(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, value, "must be true or false")
        return value

    def str_list(self, name: str, default: list[str] | None = None) -> tuple[str, ...]:
        value = self.data.get(name, default)
        if value is None:
            raise self.fail(name, value, "is required")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, value, "must be a list of strings")
        return tuple(value)

    def column_list(self, name: str, columns: Mapping[str, Any]) -> tuple[str, ...]:
        """A non-empty list of names of the contract's columns."""
        value = self.str_list(name)
        if not value:
            raise self.fail(name, [], "needs at least one column")
        for column in value:
            if column not in columns:
                raise self.fail(name, list(value), f"column {column!r} is not in [columns]")
        return value


def _parse_toml(file: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", None, f"not valid TOML: {exc}") from exc  # exc names line and column


def _check_type(cols: _Table, name: str, type_: str) -> str:
    match = _DECIMAL.fullmatch(type_.replace(" ", ""))
    if match:
        precision, scale = int(match[1]), int(match[2])
        if not (1 <= precision <= 38 and scale <= precision):
            raise cols.fail(f"{name}.type", type_, "decimal needs 1 <= precision <= 38 and scale <= precision")
        return f"decimal({precision},{scale})"
    if type_ not in _SIMPLE_TYPES:
        raise cols.fail(f"{name}.type", type_, f"unknown type; expected one of {list(_SIMPLE_TYPES)} or decimal(p,s)")
    return type_


def parse_contract(file: str, text: str) -> Contract:
    """Parse one dataset contract; the dataset is named after its file (`orders.toml` -> orders)."""
    name = Path(file).stem
    if not _NAME.fullmatch(name):
        raise ConfigError(file, "(file name)", name, "a dataset name is lowercase letters, digits and _")
    top = _Table(file, "", _parse_toml(file, text))
    top.only(
        {"description", "formats", "delimiter", "primary_key", "partition_column", "columns", "foreign_keys", "rules"}
    )
    cols = top.table("columns")
    if not cols.data:
        raise top.fail("columns", cols.data, "a contract needs at least one column")
    columns = []
    for col_name in cols.data:
        if not _NAME.fullmatch(col_name):
            raise cols.fail(col_name, col_name, "a column name is lowercase letters, digits and _")
        spec = cols.table(col_name)
        spec.only({"type", "nullable", "min", "max"})
        column = Column(
            col_name,
            _check_type(cols, col_name, spec.str("type")),
            spec.bool("nullable", True),
            spec.number("min"),
            spec.number("max"),
        )
        if (column.min is not None or column.max is not None) and not column.numeric:
            raise spec.fail(
                "min" if column.min is not None else "max",
                column.min if column.min is not None else column.max,
                f"bounds apply to numeric columns, not {column.type}",
            )
        if column.min is not None and column.max is not None and column.min > column.max:
            raise spec.fail("max", column.max, f"is below min = {column.min}")
        columns.append(column)
    by_name = {c.name: c for c in columns}

    formats = top.str_list("formats", ["csv"])
    for fmt in formats:
        if fmt not in FORMATS:
            raise top.fail("formats", list(formats), f"unknown format {fmt!r}; expected some of {list(FORMATS)}")
    delimiter = top.str("delimiter", ",")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise top.fail("delimiter", delimiter, "must be one character other than a quote or line break")
    primary_key = top.column_list("primary_key", by_name)
    for key_col in primary_key:
        if by_name[key_col].nullable:
            raise top.fail("primary_key", list(primary_key), f"column {key_col!r} must be nullable = false")
    fks_t = top.table("foreign_keys")
    foreign_keys = {}
    for fk_col in fks_t.data:
        target = fks_t.str(fk_col, pattern=re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*"))
        if fk_col not in by_name:
            raise fks_t.fail(fk_col, target, f"column {fk_col!r} is not in [columns]")
        dataset, column = target.split(".")
        foreign_keys[fk_col] = (dataset, column)
    partition = top.data.get("partition_column")
    if partition is not None and top.str("partition_column") not in by_name:
        raise top.fail("partition_column", partition, "is not in [columns]")
    return Contract(
        name=name,
        columns=tuple(columns),
        primary_key=primary_key,
        formats=formats,  # type: ignore[arg-type]
        delimiter=delimiter,
        partition_column=partition,
        description=top.str("description", ""),
        foreign_keys=foreign_keys,
        rules=_parse_rules(file, top.data.get("rules", []), by_name),
    )


_RULE_KEYS = {
    "not_null": {"column"},
    "unique": {"columns"},
    "accepted_values": {"column", "values"},
    "range": {"column", "min", "max"},
    "pattern": {"column", "pattern"},
    "references": {"column", "to"},
    "freshness": {"column", "max_age_hours"},
    "row_count": {"min", "max"},
    "volume": {"max_change_percent", "history", "min_history"},
}


_RULE_COLUMN_TYPES = {
    "range": ("numeric",),
    "pattern": ("string",),
    "accepted_values": ("string",),
    "freshness": ("date", "timestamp"),
}


def _parse_rules(file: str, data: Any, columns: Mapping[str, Column]) -> tuple[Rule, ...]:
    """`[[rules]]`: every mistake a rule can carry (a column that does not exist, a check that cannot apply
    to the column's type, a pattern that does not compile) is refused here, when the config is loaded."""
    if not isinstance(data, list):
        raise ConfigError(file, "rules", data, "must be an array of tables ([[rules]])")
    rules: list[Rule] = []
    for index, item in enumerate(data):
        t = _Table(file, f"rules[{index}]", item)
        rule = _parse_rule(t, columns)
        if any(r.name == rule.name for r in rules):
            raise t.fail("name", rule.name, "another rule has this name; give one of them a `name`")
        rules.append(rule)
    return tuple(rules)


def _rule_column(t: _Table, check: str, columns: Mapping[str, Column], kinds: tuple[str, ...] = ()) -> str:
    """The rule's `column`: it exists, and (given `kinds`) has a type the check applies to."""
    name = t.str("column")
    if name not in columns:
        raise t.fail("column", name, f"no such column; the contract has {sorted(columns)}")
    col = columns[name]
    if kinds and col.type not in kinds and not ("numeric" in kinds and col.numeric):
        raise t.fail("column", name, f"{check} applies to {' or '.join(kinds)} columns, not {col.type}")
    return name


def _parse_rule(t: _Table, columns: Mapping[str, Column]) -> Rule:
    check = t.str("check", choices=CHECKS)
    t.only({"check", "severity", "name", *_RULE_KEYS[check]})
    kwargs: dict[str, Any] = {}
    if check == "unique":
        kwargs["columns"] = t.column_list("columns", columns)
    elif "column" in _RULE_KEYS[check]:
        kwargs["columns"] = (_rule_column(t, check, columns, _RULE_COLUMN_TYPES.get(check, ())),)
    if check == "accepted_values":
        kwargs["values"] = t.str_list("values")
        if not kwargs["values"]:
            raise t.fail("values", [], "needs at least one value")
    elif check in ("range", "row_count"):
        low, high = t.number("min"), t.number("max")
        if low is None and high is None:
            raise t.fail("min", None, f"{check} needs min, max or both")
        if low is not None and high is not None and low > high:
            raise t.fail("max", high, f"is below min = {low}")
        if check == "row_count" and any(v is not None and v < 0 for v in (low, high)):
            raise t.fail("min", low, "row counts are never negative")
        kwargs.update(min=low, max=high)
    elif check == "pattern":
        pattern = t.str("pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise t.fail("pattern", pattern, f"not a valid regular expression: {exc}") from None
        kwargs["pattern"] = pattern
    elif check == "references":
        target = t.str("to", pattern=re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*"))
        kwargs["references"] = tuple(target.split("."))  # checked against the other contracts by parse_settings
    elif check == "freshness":
        hours = t.number("max_age_hours")
        if hours is None or hours <= 0:
            raise t.fail("max_age_hours", hours, "is required and must be above 0")
        kwargs["max_age_hours"] = hours
    elif check == "volume":
        change = t.number("max_change_percent")
        if change is None or change <= 0:
            raise t.fail("max_change_percent", change, "is required and must be above 0")
        history, least = t.int("history", 10, minimum=1), t.int("min_history", 3, minimum=1)
        if least > history:
            raise t.fail("min_history", least, f"is above history = {history}")
        kwargs.update(max_change_percent=change, history=history, min_history=least)
    default_name = f"{check}({','.join(kwargs['columns'])})" if kwargs.get("columns") else check
    return Rule(
        name=t.str("name", default_name), check=check, severity=t.str("severity", "error", choices=SEVERITIES), **kwargs
    )


_STAGE_KEYS = (
    "athena_workgroup",
    "log_bucket",
    "glue_role",
    "state_machine",
    "pipeline_role",
    "glue_database",
    "region",
    "bucket",
    "ledger_table",
    "ingest_queue",
    "ingest_dlq",
    "accepted_queue",
    "alerts_topic",
    "notifications_topic",
)
_TUNABLES = (
    "retry_mode",
    "max_attempts",
    "lease_seconds",
    "queue_visibility_seconds",
    "max_receive_count",
    "enforce_tls",
)


def _parse_stage(file: str, project: str, region: str, defaults: _Table, stage: _Table, name: str) -> Stage:
    stage.only(_STAGE_KEYS + _TUNABLES)

    def tunable_int(key: str, default: int, minimum: int) -> int:
        return stage.int(key, defaults.int(key, default, minimum=minimum), minimum=minimum)

    def named(role: str, suffix: str) -> str:
        return stage.str(role, f"{project}-{name}-{suffix}")

    return Stage(
        name=name,
        project=project,
        region=stage.str("region", region),
        bucket=stage.str("bucket", f"{project}-{name}-lake", pattern=_BUCKET),
        log_bucket=stage.str("log_bucket", f"{project}-{name}-access-logs", pattern=_BUCKET),
        ledger_table=named("ledger_table", "ledger"),
        ingest_queue=named("ingest_queue", "ingest"),
        ingest_dlq=named("ingest_dlq", "ingest-dlq"),
        accepted_queue=named("accepted_queue", "accepted.fifo"),
        alerts_topic=named("alerts_topic", "alerts"),
        notifications_topic=named("notifications_topic", "notifications"),
        retry_mode=stage.str(
            "retry_mode", defaults.str("retry_mode", "standard", choices=RETRY_MODES), choices=RETRY_MODES
        ),
        max_attempts=tunable_int("max_attempts", 5, 1),
        lease_seconds=tunable_int("lease_seconds", 960, 1),
        queue_visibility_seconds=tunable_int("queue_visibility_seconds", 1800, 0),
        max_receive_count=tunable_int("max_receive_count", 5, 1),
        enforce_tls=stage.bool("enforce_tls", defaults.bool("enforce_tls", True)),
        glue_role=named("glue_role", "glue"),
        state_machine=named("state_machine", "pipeline"),
        pipeline_role=named("pipeline_role", "pipeline"),
        athena_workgroup=named("athena_workgroup", "analytics"),
        glue_database=stage.str(
            "glue_database", f"{project}_{name}".replace("-", "_"), pattern=re.compile(r"[a-z0-9_]{1,255}")
        ),
    )


def parse_settings(files: Mapping[str, str]) -> Settings:
    """Build Settings from file texts keyed by relative path (`lakehouse.toml`, `datasets/orders.toml`)."""
    if SETTINGS_FILE not in files:
        raise ConfigError(SETTINGS_FILE, "(file)", None, "missing")
    file = SETTINGS_FILE
    top = _Table(file, "", _parse_toml(file, files[file]))
    top.only({"project", "zones", "limits", "ingest", "pipeline", "schedules", "stages"})
    project_t = top.table("project")
    project_t.only({"name", "region"})
    project = project_t.str("name", pattern=re.compile(r"[a-z][a-z0-9-]{1,30}"))
    region = project_t.str("region", pattern=re.compile(r"[a-z]{2}(-[a-z]+)+-\d"))

    zones_t = top.table("zones")
    zones_t.only(Zones.__dataclass_fields__)
    zone_values: dict[str, str] = {}
    for zone, default in vars(Zones()).items():
        value = zones_t.str(zone, default, pattern=re.compile(r"[a-z0-9][a-z0-9_.-]*/"))
        if value in zone_values.values():
            raise zones_t.fail(zone, value, "every zone needs its own prefix")
        zone_values[zone] = value

    limits_t = top.table("limits")
    limits_t.only(Limits.__dataclass_fields__)
    limits = Limits(**{k: limits_t.int(k, v, minimum=1) for k, v in vars(Limits()).items()})

    pipeline_t = top.table("pipeline")
    pipeline_t.only(PipelineSettings.__dataclass_fields__)
    pipeline = PipelineSettings(**{k: pipeline_t.int(k, v, minimum=1) for k, v in vars(PipelineSettings()).items()})
    if pipeline.max_rejected_percent > 100:
        raise pipeline_t.fail("max_rejected_percent", pipeline.max_rejected_percent, "is a percentage (1-100)")

    ingest = top.table("ingest")
    ingest.only(_TUNABLES)
    schedules_t = top.table("schedules")
    schedules = {k: schedules_t.str(k, pattern=re.compile(r"(cron|rate)\(.+\)")) for k in schedules_t.data}

    stages_t = top.table("stages")
    if not stages_t.data:
        raise top.fail("stages", {}, "declare at least one stage, e.g. [stages.local]")
    stages = {}
    for name in stages_t.data:
        if not _NAME.fullmatch(name):
            raise stages_t.fail(name, name, "a stage name is lowercase letters, digits and _")
        stages[name] = _parse_stage(file, project, region, ingest, stages_t.table(name), name)
        if not stages[name].accepted_queue.endswith(".fifo"):
            raise stages_t.fail(
                f"{name}.accepted_queue",
                stages[name].accepted_queue,
                "must be a FIFO queue (name ending in .fifo): it de-duplicates announcements",
            )

    prefix = f"{DATASETS_DIR}/"
    datasets = {}
    for path in sorted(p for p in files if p.startswith(prefix) and p.endswith(".toml")):
        contract = parse_contract(path, files[path])
        datasets[contract.name] = contract
    if not datasets:
        raise ConfigError(f"{DATASETS_DIR}/", "(files)", None, "no dataset contracts (*.toml) found")
    for contract in datasets.values():  # foreign keys and `references` rules name another contract's column
        targets = [(f"foreign_keys.{c}", t) for c, t in contract.foreign_keys.items()]
        targets += [(f"rules[{i}].to", r.references) for i, r in enumerate(contract.rules) if r.references]
        for key, (dataset, column) in targets:
            if dataset not in datasets or column not in datasets[dataset].column_names:
                raise ConfigError(
                    f"{DATASETS_DIR}/{contract.name}.toml", key, f"{dataset}.{column}", "no such dataset column"
                )
    return Settings(
        project=project,
        region=region,
        zones=Zones(**zone_values),
        limits=limits,
        pipeline=pipeline,
        stages=stages,
        datasets=datasets,
        schedules=schedules,
    )


def config_files(root: Path) -> dict[str, str]:
    """The configuration files under `root`, keyed by their path relative to it."""
    root = Path(root)
    paths = [root / SETTINGS_FILE, *sorted((root / DATASETS_DIR).glob("*.toml"))]
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in paths if p.is_file()}


def load_settings(root: Path | str) -> Settings:
    """Load and validate the configuration kept in a directory (the repository's `config/`)."""
    return parse_settings(config_files(Path(root)))


def load_settings_from_s3(s3: Any, bucket: str, prefix: str) -> Settings:
    """Load and validate the configuration that provisioning uploaded to `s3://bucket/prefix`."""
    files = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if rel == SETTINGS_FILE or (rel.startswith(f"{DATASETS_DIR}/") and rel.endswith(".toml")):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                files[rel] = body.decode("utf-8")
    return parse_settings(files)


def dataset_levels(settings: Settings, datasets: list[str] | None = None) -> list[list[str]]:
    """Datasets in levels: each level's foreign-key parents are in earlier levels, so a level runs in parallel."""
    depth: dict[str, int] = {}
    for name in dataset_order(settings):
        parents = [p for p, _ in settings.datasets[name].foreign_keys.values() if p != name]
        depth[name] = 1 + max((depth[p] for p in parents), default=-1)
    wanted = [d for d in depth if datasets is None or d in datasets]
    return [sorted(d for d in wanted if depth[d] == level) for level in sorted({depth[d] for d in wanted})]


def dataset_order(settings: Settings) -> list[str]:
    """Datasets with every foreign-key parent before its children (orders before order_items)."""
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in path:
            raise ValueError(f"foreign keys form a cycle: {' -> '.join((*path, name))}")
        for parent, _ in settings.datasets[name].foreign_keys.values():
            if parent != name:
                visit(parent, (*path, name))
        done.append(name)

    for name in sorted(settings.datasets):
        visit(name)
    return done
