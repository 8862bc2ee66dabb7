"""TOML configuration: `lakehouse.toml` and one contract per dataset, validated into frozen dataclasses.

The same parser reads the files from the repository (CLI, tests) and from the lake bucket's `config/`
prefix (Lambdas, which Chalice ships without the repository's `config/` folder). Every error names the
file, the dotted key and the offending value.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config.columns import Column
from chalicelib.config.model import (
    ACCOUNT,
    DATASETS_DIR,
    FORMATS,
    RETRY_MODES,
    SETTINGS_FILE,
    WORKER_LIMITS,
    WORKER_TYPE,
    Contract,
    Format,
    Limits,
    PipelineSettings,
    Settings,
    Stage,
    Zones,
)
from chalicelib.config.reader import Where, parse_toml, read, text_of
from chalicelib.errors import ConfigError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = [
    "DATASETS_DIR",
    "FORMATS",
    "RETRY_MODES",
    "SETTINGS_FILE",
    "Column",
    "Contract",
    "Format",
    "Limits",
    "PipelineSettings",
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


def _check_type(where: Where, name: str, type_: str) -> str:
    match = _DECIMAL.fullmatch(type_.replace(" ", ""))
    if match:
        precision, scale = int(match[1]), int(match[2])
        if not (1 <= precision <= 38 and scale <= precision):
            raise where.fail(f"{name}.type", type_, "decimal needs 1 <= precision <= 38 and scale <= precision")
        return f"decimal({precision},{scale})"
    if type_ not in _SIMPLE_TYPES:
        raise where.fail(f"{name}.type", type_, f"unknown type; expected one of {list(_SIMPLE_TYPES)} or decimal(p,s)")
    return type_


def parse_contract(file: str, text: str) -> Contract:
    """Parse one dataset contract; the dataset is named after its file (`orders.toml` -> orders)."""
    from chalicelib.config.documents import ColumnDoc, ContractDoc
    from chalicelib.config.rules import parse_rules  # each check type reads its own keys

    name = Path(file).stem
    if not _NAME.fullmatch(name):
        raise ConfigError(file, "(file name)", name, "a dataset name is lowercase letters, digits and _")
    doc = read(file, parse_toml(file, text), ContractDoc)
    top, cols = Where(file), Where(file, "columns")
    if not doc.columns:
        raise top.fail("columns", doc.columns, "a contract needs at least one column")
    columns = []
    for col_name, raw in doc.columns.items():
        if not _NAME.fullmatch(col_name):
            raise cols.fail(col_name, col_name, "a column name is lowercase letters, digits and _")
        spec = read(file, raw, ColumnDoc, at=f"columns.{col_name}")
        column = Column(col_name, _check_type(cols, col_name, spec.type), spec.nullable, spec.min, spec.max)
        here = Where(file, f"columns.{col_name}")
        if (column.min is not None or column.max is not None) and not column.numeric:
            raise here.fail(
                "min" if column.min is not None else "max",
                column.min if column.min is not None else column.max,
                f"bounds apply to numeric columns, not {column.type}",
            )
        if column.min is not None and column.max is not None and column.min > column.max:
            raise here.fail("max", column.max, f"is below min = {column.min}")
        columns.append(column)
    by_name = {c.name: c for c in columns}

    for fmt in doc.formats:
        if fmt not in FORMATS:
            raise top.fail("formats", doc.formats, f"unknown format {fmt!r}; expected some of {list(FORMATS)}")
    if len(doc.delimiter) != 1 or doc.delimiter in '"\r\n':
        raise top.fail("delimiter", doc.delimiter, "must be one character other than a quote or line break")
    primary_key = top.column_list("primary_key", doc.primary_key, by_name)
    for key_col in primary_key:
        if by_name[key_col].nullable:
            raise top.fail("primary_key", list(primary_key), f"column {key_col!r} must be nullable = false")
    foreign_keys: dict[str, tuple[str, str]] = {}
    for fk_col, target in doc.foreign_keys.items():
        if fk_col not in by_name:
            raise Where(file, "foreign_keys").fail(fk_col, target, f"column {fk_col!r} is not in [columns]")
        parent, parent_column = target.split(".")
        foreign_keys[fk_col] = (parent, parent_column)
    if doc.partition_column is not None and doc.partition_column not in by_name:
        raise top.fail("partition_column", doc.partition_column, "is not in [columns]")
    return Contract(
        name=name,
        columns=tuple(columns),
        primary_key=primary_key,
        formats=tuple(doc.formats),  # type: ignore[arg-type]  # checked against FORMATS above
        delimiter=doc.delimiter,
        partition_column=doc.partition_column,
        description=doc.description,
        foreign_keys=foreign_keys,
        rules=parse_rules(file, doc.rules, by_name),
        engine=doc.engine,
    )


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in botocore's own endpoint data (its `partitions.json`): a region it does not
    know would fail only at the first AWS call, as retried 500s from the local stage or a DNS error on AWS."""
    import importlib.util
    import json

    # The file botocore's loader reads, read without importing botocore (a third of a second on a cold CLI start).
    spec = importlib.util.find_spec("botocore")
    data = Path(spec.origin if spec and spec.origin else "").parent / "data" / "partitions.json"
    partitions = json.loads(data.read_text())["partitions"]
    return frozenset(name for partition in partitions for name in partition["regions"])


def _check_region(where: Where, key: str, region: str) -> str:
    if region not in known_regions():
        from importlib.metadata import version

        close = difflib.get_close_matches(region, sorted(known_regions()), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise where.fail(key, region, f"not an AWS region botocore {version('botocore')} knows{hint}")
    return region


def _parse_stage(file: str, project: str, region: str, defaults: Any, raw: Any, name: str) -> Stage:
    from chalicelib.config.documents import StageNames

    doc = read(file, raw, StageNames, at=f"stages.{name}")
    if doc.region is not None:
        _check_region(Where(file, f"stages.{name}"), "region", doc.region)

    def tunable(key: str, default: Any) -> Any:
        """The stage's own value, else `[ingest]`'s, else the default."""
        for value in (getattr(doc, key), getattr(defaults, key)):
            if value is not None:
                return value
        return default

    def named(key: str, suffix: str) -> str:
        return getattr(doc, key) or f"{project}-{name}-{suffix}"

    region = doc.region or region
    return Stage(
        name=name,
        project=project,
        region=region,
        # bucket names are global: a default one carries the account (known once deployed) and the region
        bucket=doc.bucket or f"{project}-{name}-lake-{ACCOUNT}-{region}",
        log_bucket=doc.log_bucket or f"{project}-{name}-access-logs-{ACCOUNT}-{region}",
        ledger_table=named("ledger_table", "ledger"),
        ingest_queue=named("ingest_queue", "ingest"),
        ingest_dlq=named("ingest_dlq", "ingest-dlq"),
        accepted_queue=named("accepted_queue", "accepted.fifo"),
        alerts_topic=named("alerts_topic", "alerts"),
        notifications_topic=named("notifications_topic", "notifications"),
        retry_mode=tunable("retry_mode", "standard"),
        max_attempts=tunable("max_attempts", 5),
        lease_seconds=tunable("lease_seconds", 960),
        queue_visibility_seconds=tunable("queue_visibility_seconds", 1800),
        max_receive_count=tunable("max_receive_count", 5),
        enforce_tls=tunable("enforce_tls", True),
        glue_role=named("glue_role", "glue"),
        state_machine=named("state_machine", "pipeline"),
        pipeline_role=named("pipeline_role", "pipeline"),
        athena_workgroup=named("athena_workgroup", "analytics"),
        glue_database=doc.glue_database or f"{project}_{name}".replace("-", "_"),
    )


def parse_settings(files: Mapping[str, str]) -> Settings:
    """Build Settings from file texts keyed by relative path (`lakehouse.toml`, `datasets/orders.toml`)."""
    from chalicelib.config.documents import SettingsDoc
    from chalicelib.config.rules import ReferencesRule

    if SETTINGS_FILE not in files:
        raise ConfigError(SETTINGS_FILE, "(file)", None, "missing")
    file = SETTINGS_FILE
    doc = read(file, parse_toml(file, files[file]), SettingsDoc)
    project, region = doc.project.name, _check_region(Where(file, "project"), "region", doc.project.region)

    zone_values: dict[str, str] = {}
    for zone in vars(Zones()):
        value = getattr(doc.zones, zone)
        if value in zone_values.values():
            raise Where(file, "zones").fail(zone, value, "every zone needs its own prefix")
        zone_values[zone] = value
    limits = Limits(**{k: getattr(doc.limits, k) for k in vars(Limits())})
    pipeline = PipelineSettings(**{k: getattr(doc.pipeline, k) for k in vars(PipelineSettings())})
    if pipeline.max_rejected_percent > 100:
        raise Where(file, "pipeline").fail(
            "max_rejected_percent", pipeline.max_rejected_percent, "is a percentage (1-100)"
        )
    low, high = WORKER_LIMITS[WORKER_TYPE]
    if not low <= pipeline.spark_max_workers <= high:
        raise Where(file, "pipeline").fail(
            "spark_max_workers", pipeline.spark_max_workers, f"Glue runs a {WORKER_TYPE} job on {low}-{high} workers"
        )

    if not doc.stages:
        raise Where(file).fail("stages", {}, "declare at least one stage, e.g. [stages.local]")
    stages = {}
    for name, raw in doc.stages.items():
        if not _NAME.fullmatch(name):
            raise Where(file, "stages").fail(name, name, "a stage name is lowercase letters, digits and _")
        stages[name] = _parse_stage(file, project, region, doc.ingest, raw, name)
        if not stages[name].accepted_queue.endswith(".fifo"):
            raise Where(file, "stages").fail(
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
        rules = enumerate(contract.rules)
        targets += [(f"rules[{i}].to", r.references) for i, r in rules if isinstance(r, ReferencesRule)]
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
        schedules=dict(doc.schedules),
    )


def config_files(root: Path) -> dict[str, str]:
    """The configuration files under `root`, keyed by their path relative to it."""
    root = Path(root)
    paths = [root / SETTINGS_FILE, *sorted((root / DATASETS_DIR).glob("*.toml"))]
    return {p.relative_to(root).as_posix(): text_of(str(p), p.read_bytes()) for p in paths if p.is_file()}


def load_settings(root: Path | str) -> Settings:
    """Load and validate the configuration kept in a directory (the repository's `config/`). An error names the
    file as the user finds it (`config/lakehouse.toml`: relative to the working directory when under it)."""
    root = Path(root)
    files = config_files(root)
    try:
        return parse_settings(files)
    except ConfigError as exc:
        try:
            shown = root.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = root
        raise exc.under(shown.as_posix()) from None


def load_settings_from_s3(s3: S3Client, bucket: str, prefix: str) -> Settings:
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
