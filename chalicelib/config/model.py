"""The configuration as frozen dataclasses: settings, stages, zones, limits and dataset contracts (their rules are
Structs of `config/rules.py`, one per check type)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, get_args

from chalicelib.config.columns import Column
from chalicelib.errors import ConfigError

if TYPE_CHECKING:  # msgspec Structs, loaded only when a contract is parsed (`import app` does not load msgspec)
    from chalicelib.config.rules import Rule

SETTINGS_FILE = "lakehouse.toml"


DATASETS_DIR = "datasets"


FORMATS = ("csv", "jsonl")


BUCKET_NAME = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"  # S3 bucket naming rules (the common, DNS-safe part)
# A default bucket name holds this until the AWS account is known (Stage.for_account): bucket names are global
# across every account, so `lakehouse-dev-lake` alone is likely someone else's (S3 User Guide, "Bucket naming").
ACCOUNT = "{account}"
RetryMode = Literal["standard", "adaptive", "legacy"]  # botocore's retry modes
RETRY_MODES: tuple[RetryMode, ...] = get_args(RetryMode)


WORKER_TYPE = "G.1X"  # 1 DPU: 4 vCPUs, 16 GB (Glue docs, "AWS Glue worker types")
# StartJobRun's NumberOfWorkers: "The maximum number of workers you can define are 299 for G.1X, and 149 for G.2X";
# G.1X and G.2X need at least 2 (a driver and an executor; terraform-provider-aws issue 23372 shows Glue refusing 1).
WORKER_LIMITS = {"G.1X": (2, 299), "G.2X": (2, 149)}


Format = Literal["csv", "jsonl"]
Engine = Literal["auto", "spark", "single"]  # a dataset's ETL engine: Spark past [pipeline] spark_bytes, always, never


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
    engine: Engine = "auto"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The contract's column names, in order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column named `name`; a KeyError if the contract has none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

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
    scratch: str = "tmp/"  # what a job stages for another engine to read (a Spark batch); expires in days

    def rejected_rows(self, dataset: str, batch: int) -> str:
        """The key of a batch's rejected rows (Parquet, one object per batch: a re-run rewrites it)."""
        return f"{self.rejected}{dataset}/rows/batch={batch:06d}/rejected.parquet"

    def rolled_back_mark(self, dataset: str, batch: int) -> str:
        """The mark beside a batch's rejected rows once the quality gate rolled the batch back (its rows stay)."""
        return f"{self.rejected}{dataset}/rows/batch={batch:06d}/ROLLED_BACK.json"

    def spark_batch(self, dataset: str, batch: int) -> str:
        """The folder where a Spark job on Glue stages its batch's rows as Parquet (deleted once merged)."""
        return f"{self.scratch}spark/{dataset}/batch={batch:06d}"


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 5 * 1024**3
    max_decompressed_bytes: int = 20 * 1024**3
    max_compression_ratio: int = 200
    max_line_bytes: int = 1024**2
    max_batch_files: int = 1000  # one ETL batch: at most this many files ...
    max_batch_bytes: int = 2 * 1024**3  # ... and this many bytes (streamed through etl_memory_bytes, docs/etl.md)
    athena_bytes_scanned_cutoff: int = 10 * 1024**3  # an Athena query reading more is cancelled (billed per byte)
    access_log_days: int = 90  # the lake bucket's S3 access logs are kept this long


@dataclass(frozen=True)
class PipelineSettings:
    """When accepted files start a pipeline run, and what stops a run before curated/ is published."""

    window_seconds: int = 300  # a run starts once the oldest waiting file has waited this long ...
    start_files: int = 1000  # ... or this many files wait ...
    start_bytes: int = 1024**3  # ... or this many bytes (Glue bills a minimum per job run: batch them)
    max_rejected_percent: int = 10  # quality gate: more rejected rows than this in a dataset batch is an error
    single_job_bytes: int = 256 * 1024**2  # a run's batch up to this size runs whole in one Glue job (docs/etl.md)
    etl_memory_bytes: int = 2 * 1024**3  # a batch's working memory in the ETL (DuckDB, MERGE); more spills to disk
    spark_bytes: int = 8 * 1024**3  # a dataset batch this big or bigger runs on Spark (docs/etl.md, "The Spark engine")
    spark_worker_bytes: int = 2 * 1024**3  # a Spark job gets an executor (a G.1X worker) per this many bytes ...
    spark_max_workers: int = 20  # ... and at most this many workers (2-299), a ceiling with Glue's auto scaling on


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
    retry_mode: RetryMode = "standard"
    max_attempts: int = 5
    lease_seconds: int = 960
    queue_visibility_seconds: int = 1800
    max_receive_count: int = 5
    enforce_tls: bool = True  # bucket policy denying plain HTTP; off only for the loopback local stage
    glue_role: str = ""  # the Glue roles' stem (`<glue_role>-<kind>`: chalicelib.names), or one role's ARN for all
    state_machine: str = ""
    pipeline_role: str = ""  # IAM role (name or ARN) the state machine runs as
    glue_database: str = ""  # the Glue catalog database of the stage's tables (raw_*, processed, curated)
    athena_workgroup: str = ""
    log_bucket: str = ""  # where S3 writes the lake bucket's server access logs
    account: str = ""  # the AWS account, once known (for_account): the default bucket names carry it

    @property
    def needs_account(self) -> bool:
        """A default bucket name still waits for the account it is deployed in."""
        return ACCOUNT in self.bucket + self.log_bucket

    def for_account(self, account: str) -> Stage:
        """The stage with its default bucket names completed with `account`: `lakehouse-dev-lake-<account>-<region>`."""
        names = {k: getattr(self, k).replace(ACCOUNT, account) for k in ("bucket", "log_bucket")}
        for key, name in names.items():
            if len(name) > 63:  # S3's longest bucket name
                raise ConfigError(
                    SETTINGS_FILE, f"stages.{self.name}.{key}", name, f"longer than S3's 63 characters: set {key} = ..."
                )
        return replace(self, **names, account=account)

    def state_machine_arn(self, account: str) -> str:
        """The ARN of the stage's pipeline state machine in `account`."""
        return f"arn:aws:states:{self.region}:{account}:stateMachine:{self.state_machine}"

    def topic_arn(self, topic: str, account: str) -> str:
        """The ARN of one of the stage's SNS topics in `account`."""
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

    def for_account(self, account: str) -> Settings:
        """The settings with every stage's default bucket names completed with the AWS account (Stage.for_account)."""
        return replace(self, stages={name: stage.for_account(account) for name, stage in self.stages.items()})

    def stage(self, name: str) -> Stage:
        """A stage by name; an unknown one is a ConfigError listing the known ones."""
        try:
            return self.stages[name]
        except KeyError:
            raise ConfigError(SETTINGS_FILE, "stages", name, f"no such stage; known: {sorted(self.stages)}") from None
