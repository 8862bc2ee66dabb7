"""TOML configuration: `lakehouse.toml` and one contract per dataset, validated into frozen dataclasses.

The same parser reads the files from the repository (CLI, tests) and from the lake bucket's `config/`
prefix (Lambdas, which Chalice ships without the repository's `config/` folder). Every error names the
file, the dotted key and the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.config.model import (
    DATASETS_DIR,
    FORMATS,
    RETRY_MODES,
    SETTINGS_FILE,
    SEVERITIES,
    Column,
    Contract,
    Format,
    Limits,
    PipelineSettings,
    Rule,
    Settings,
    Stage,
    Zones,
)
from chalicelib.config.reader import Table, parse_toml, text_of
from chalicelib.errors import ConfigError

__all__ = [
    "DATASETS_DIR",
    "FORMATS",
    "RETRY_MODES",
    "SETTINGS_FILE",
    "SEVERITIES",
    "Column",
    "Contract",
    "Format",
    "Limits",
    "PipelineSettings",
    "Rule",
    "Settings",
    "Stage",
    "Zones",
    "config_files",
    "dataset_levels",
    "dataset_order",
    "load_settings",
    "load_settings_from_s3",
    "parse_contract",
    "parse_settings",
]

_SIMPLE_TYPES = ("string", "int32", "int64", "double", "bool", "date", "timestamp")
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _check_type(cols: Table, name: str, type_: str) -> str:
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
    from chalicelib.quality.checks import parse_rules  # each check type reads its own keys (quality.checks imports
    # the config model, so not at the top)

    name = Path(file).stem
    if not _NAME.fullmatch(name):
        raise ConfigError(file, "(file name)", name, "a dataset name is lowercase letters, digits and _")
    top = Table(file, "", parse_toml(file, text))
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
    foreign_keys: dict[str, tuple[str, str]] = {}
    for fk_col in fks_t.data:
        target = fks_t.str(fk_col, pattern=re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*"))
        if fk_col not in by_name:
            raise fks_t.fail(fk_col, target, f"column {fk_col!r} is not in [columns]")
        parent, parent_column = target.split(".")
        foreign_keys[fk_col] = (parent, parent_column)
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
        rules=parse_rules(file, top.data.get("rules", []), by_name),
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


def _parse_stage(file: str, project: str, region: str, defaults: Table, stage: Table, name: str) -> Stage:
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
    top = Table(file, "", parse_toml(file, files[file]))
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
    _parents_first(datasets)  # a foreign-key cycle between contracts is refused here
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
    return {p.relative_to(root).as_posix(): text_of(str(p), p.read_bytes()) for p in paths if p.is_file()}


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
                files[rel] = text_of(f"s3://{bucket}/{obj['Key']}", body)
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
    return _parents_first(settings.datasets)


def _parents_first(datasets: Mapping[str, Contract]) -> list[str]:
    """The datasets, each after its foreign-key parents (a self-reference is allowed); a cycle between contracts is
    a ConfigError naming it, so it is refused when the configuration loads, not found by the batcher."""
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise ConfigError(f"{DATASETS_DIR}/{name}.toml", "foreign_keys", cycle, "foreign keys form a cycle")
        for parent, _ in datasets[name].foreign_keys.values():
            if parent != name:
                visit(parent, (*path, name))
        done.append(name)

    for name in sorted(datasets):
        visit(name)
    return done
