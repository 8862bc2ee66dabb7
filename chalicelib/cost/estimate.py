"""Monthly cost estimate of a lakehouse stage, service by service, from a usage description and one price table
(`prices.json`, with its source and date).

Usage comes from a scenario (light, medium, heavy), from the stage's own configuration (how often the pipeline
can run, how many Glue jobs and crawlers a run starts, the schedules), and from any parameter the caller gives.
Every parameter is checked: a wrong type, a negative or absurd number, an unknown scenario, region or storage
class is refused with a message naming the parameter. Written by hand: no library prices AWS usage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from chalicelib.cost.prices import DAYS, HOURS, crawl_dpu_hours, job_dpu_hours
from chalicelib.cost.prices import prices as prices  # re-exported with UsageError: the API and CLI use them from here
from chalicelib.errors import UsageError as UsageError
from chalicelib.pipeline.engines import (
    SINGLE_NODE_MIB_PER_SECOND,
    SPARK_SHARE_OF_ONE_NODE,
    STAGING_MIB_PER_SECOND,
    choose,
    single_node_run,
    spark_by_size,
    spark_run,
)
from chalicelib.stage.catalog import catalogued_from_contract


@dataclass(frozen=True)
class Usage:
    """What a month of the lakehouse does. Per-day figures are averages."""

    region: str = "us-east-1"
    stored_gb: float = 100.0
    storage_split: Mapping[str, float] = field(default_factory=lambda: {"STANDARD": 1.0})
    files_per_day: float = 500.0
    avg_file_mb: float = 2.0
    queries_per_day: float = 50.0
    gb_scanned_per_query: float = 0.5
    pipeline_runs_per_day: float = 24.0
    datasets_per_run: float = 6.0  # datasets with files in a run (each gated; a job each in a big run)
    single_job_share: float = 1.0  # runs within [pipeline] single_job_bytes: one Glue job runs all of it
    glue_dpus: float = 2.0  # Spark's minimum: two G.1X workers
    glue_minutes_per_job: float = 1.0
    spark_share: float = 0.0  # dataset batches on Spark ([pipeline] spark_bytes or their contract): a job each
    spark_dpu_minutes_per_job: float = 2.0  # what one is billed (chalicelib/pipeline/engines.py: spark_run)
    housekeeping_runs_per_month: float = 30.0  # [schedules] housekeeping: one Glue job run each time it fires
    housekeeping_dpus: float = 2.0  # the housekeeping job's two G.1X workers (chalicelib/stage/declared.py)
    housekeeping_minutes: float = 2.0  # compaction and VACUUM of every table: grows with the files to rewrite and list
    crawls_per_month: float = 6.0  # crawlers run only when a dataset's raw layout changes (about monthly each)
    crawler_dpus: float = 2.0
    crawler_minutes: float = 1.0
    transitions_per_run: float = 12.0  # a small run that crawls nothing: 11 states (the demo's update run)
    lambda_invocations_per_day: float = 3000.0
    lambda_memory_mb: float = 512.0
    lambda_avg_ms: float = 400.0
    dynamodb_writes_per_day: float = 5000.0
    dynamodb_reads_per_day: float = 20000.0
    dynamodb_storage_gb: float = 1.0
    sns_publishes_per_day: float = 30.0
    catalog_objects: float = 1000.0
    catalog_requests_per_day: float = 5000.0
    cloudwatch_logs_gb_per_month: float = 2.0
    cloudwatch_metrics: float = 20.0
    kms_keys: float = 0.0
    kms_requests_per_day: float = 0.0
    vpc_interface_endpoints: float = 0.0
    vpc_azs: float = 2.0
    vpc_endpoint_gb_per_month: float = 0.0
    firehose_gb_per_day: float = 0.0
    api_requests_per_day: float = 1000.0

    @property
    def per_dataset_share(self) -> float:
        """Runs that start a job per dataset: those past single_job_bytes, and every run with a Spark batch."""
        return 1.0 if self.spark_share else 1 - self.single_job_share

    @property
    def glue_jobs_per_run(self) -> float:
        """Glue job runs a run starts on average: one for a small run; for a big one, a job per dataset and the
        master merge (docs/etl.md, "How a run is sized"). Spark batch jobs included."""
        return 1 - self.per_dataset_share + self.per_dataset_share * (self.datasets_per_run + 1)

    @property
    def spark_jobs_per_run(self) -> float:
        """Of those, the Spark jobs: one per dataset batch on Spark."""
        return self.per_dataset_share * self.datasets_per_run * self.spark_share


SCENARIOS: dict[str, Usage] = {
    "light": Usage(
        stored_gb=20,
        files_per_day=50,
        avg_file_mb=1,
        queries_per_day=10,
        gb_scanned_per_query=0.1,
        pipeline_runs_per_day=4,
        housekeeping_minutes=1,
        lambda_invocations_per_day=300,
        dynamodb_writes_per_day=500,
        dynamodb_reads_per_day=2000,
        api_requests_per_day=100,
    ),
    "medium": Usage(),
    "heavy": Usage(
        stored_gb=10_000,
        storage_split={"STANDARD": 0.3, "STANDARD_IA": 0.3, "GLACIER_IR": 0.4},
        files_per_day=20_000,
        avg_file_mb=20,
        queries_per_day=2000,
        gb_scanned_per_query=5,
        pipeline_runs_per_day=288,
        single_job_share=0,  # 1.4 GB a run: past single_job_bytes, a job per dataset
        transitions_per_run=60,  # a job per dataset in Maps, crawls
        glue_dpus=10,
        glue_minutes_per_job=6,
        housekeeping_minutes=30,  # 10 TB, 288 runs a day of small files to compact
        lambda_invocations_per_day=100_000,
        lambda_memory_mb=1024,
        dynamodb_writes_per_day=200_000,
        dynamodb_reads_per_day=1_000_000,
        dynamodb_storage_gb=20,
        catalog_objects=200_000,
        cloudwatch_logs_gb_per_month=50,
        kms_keys=2,
        kms_requests_per_day=50_000,
        vpc_interface_endpoints=4,
        vpc_endpoint_gb_per_month=500,
        api_requests_per_day=20_000,
    ),
}

# Each number a caller may set: (minimum, maximum). Beyond the maximum is a typo, not a lakehouse.
LIMITS: dict[str, tuple[float, float]] = {
    "stored_gb": (0, 100_000_000),
    "files_per_day": (0, 100_000_000),
    "avg_file_mb": (0, 5 * 1024 * 1024),
    "queries_per_day": (0, 10_000_000),
    "gb_scanned_per_query": (0, 1_000_000),
    "pipeline_runs_per_day": (0, 1440),
    "datasets_per_run": (0, 1000),
    "single_job_share": (0, 1),
    "glue_dpus": (0, 1000),
    "glue_minutes_per_job": (0, 2880),
    "spark_share": (0, 1),
    "spark_dpu_minutes_per_job": (0, 299 * 2880),
    "housekeeping_runs_per_month": (0, 44_640),  # at most every minute
    "housekeeping_dpus": (0, 1000),
    "housekeeping_minutes": (0, 2880),
    "crawls_per_month": (0, 1_000_000),
    "crawler_dpus": (0, 1000),
    "crawler_minutes": (0, 1440),
    "transitions_per_run": (0, 1_000_000),
    "lambda_invocations_per_day": (0, 1_000_000_000),
    "lambda_memory_mb": (128, 10_240),
    "lambda_avg_ms": (0, 900_000),
    "dynamodb_writes_per_day": (0, 10_000_000_000),
    "dynamodb_reads_per_day": (0, 10_000_000_000),
    "dynamodb_storage_gb": (0, 10_000_000),
    "sns_publishes_per_day": (0, 1_000_000_000),
    "catalog_objects": (0, 1_000_000_000),
    "catalog_requests_per_day": (0, 1_000_000_000),
    "cloudwatch_logs_gb_per_month": (0, 10_000_000),
    "cloudwatch_metrics": (0, 10_000_000),
    "kms_keys": (0, 10_000),
    "kms_requests_per_day": (0, 1_000_000_000),
    "vpc_interface_endpoints": (0, 1000),
    "vpc_azs": (1, 10),
    "vpc_endpoint_gb_per_month": (0, 100_000_000),
    "firehose_gb_per_day": (0, 100_000_000),
    "api_requests_per_day": (0, 1_000_000_000),
    "storage_split": (0, 1),  # each class's share
}


def usage_for_stage(settings: Any, base: Usage | None = None) -> Usage:
    """The stage's own configuration in a usage: a run starts at most once per window and processes each dataset
    with files in its batch (no more datasets than the run's files); a run whose files fit `single_job_bytes` is one
    Glue job, a bigger one a job per dataset and the master merge; a dataset is crawled when its raw layout changes
    (taken as once a month each); the schedules invoke their Lambdas (the batcher every minute, the nightly jobs once
    a day), and `[schedules] housekeeping` starts a housekeeping job run each time it fires (none without it). Volumes
    come from `base` (medium)."""
    from chalicelib.pipeline.schedules import runs_per_month

    base = base or SCENARIOS["medium"]
    datasets = len(settings.datasets)
    runs = min(86400 / settings.pipeline.window_seconds, base.files_per_day)
    per_run = min(float(datasets), max(1.0, base.files_per_day / runs)) if runs else 0.0
    run_bytes = base.files_per_day * base.avg_file_mb * 1024**2 / runs if runs else 0.0
    batch_bytes = run_bytes / per_run if per_run else 0.0  # one dataset's batch in a run
    on_spark = [d for d in settings.datasets if choose(settings, d, int(batch_bytes)).spark]
    nightly = len(settings.schedules)
    lambdas = 1440 + nightly + base.files_per_day / 10 + runs * 4  # batcher, schedules, validator batches, steps
    housekeeping = settings.schedules.get("housekeeping")
    return replace(
        base,
        region=settings.region,
        pipeline_runs_per_day=round(runs, 2),
        datasets_per_run=round(per_run, 2),
        single_job_share=1.0 if run_bytes <= settings.pipeline.single_job_bytes else 0.0,
        spark_share=round(len(on_spark) / datasets, 4) if datasets else 0.0,
        spark_dpu_minutes_per_job=round(spark_run(batch_bytes, settings.pipeline).dpu_hours * 60, 4),
        # a crawl when the raw layout of a dataset its contract cannot catalogue (two formats) changes
        crawls_per_month=sum(not catalogued_from_contract(c) for c in settings.datasets.values()),
        housekeeping_runs_per_month=runs_per_month(housekeeping) if housekeeping else 0,
        lambda_invocations_per_day=round(lambdas),
    )


def estimate_for(
    settings: Any,
    scenario: str | None,
    params: Mapping[str, Any],
    lake_rules: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The estimate for a scenario (default: the stage's own configuration) with the caller's parameters, and
    the what-ifs (the lake bucket's lifecycle rules `lake_rules`, partition pruning of the example queries);
    what `GET /cost`, `POST /cost` and `lakehouse cost` answer, with a dataset batch's price on each engine by its
    size (`engines`)."""
    from chalicelib import QUERIES_DIR
    from chalicelib.cost.savings import crawl_saving, flex_saving, lifecycle_saving, pruning_saving

    if scenario is not None and (not isinstance(scenario, str) or scenario not in SCENARIOS):
        raise UsageError("scenario", f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    base = SCENARIOS[scenario] if scenario else usage_for_stage(settings)
    usage = parse_usage(params, base)
    p = prices()
    notice = None
    if usage.region not in p["regions"]:  # the stage's own region: a region parameter is checked by parse_usage
        priced = p["regions"][0]
        notice = (
            f"no price table for {usage.region} (the stage's region): this estimate is at {priced} prices, which "
            f"may differ; known: {', '.join(p['regions'])}"
        )
        usage = replace(usage, region=priced)
    what_if = [
        lifecycle_saving(usage, lake_rules, settings.zones, p),
        pruning_saving(usage, settings.datasets, QUERIES_DIR, p),
        crawl_saving(usage, p),
        flex_saving(usage, p),
    ]
    return {
        **estimate(usage),
        "scenario": scenario or "this stage's configuration",
        "notice": notice,
        "what_if": what_if,
        "engines": engines_by_size(settings, p),
    }


def engines_by_size(settings: Any, p: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset batch of each of a few sizes on each engine, estimated (chalicelib/pipeline/engines.py): its
    workers, minutes and price, and the engine the stage picks for it (`[pipeline] spark_bytes`)."""
    pipeline, threshold = settings.pipeline, settings.pipeline.spark_bytes
    rows = []
    for size in sorted({256 * 2**20, settings.limits.max_batch_bytes, threshold, 4 * threshold, 16 * threshold}):
        runs = [single_node_run(size), spark_run(size, pipeline)]
        rows.append(
            {
                "bytes": size,
                "chosen": "spark" if spark_by_size(size, pipeline) else "single",
                **{
                    run.engine: {
                        "workers": f"{run.workers} {run.worker_type}",
                        "minutes": round(run.seconds / 60, 1),
                        "dpu_hours": round(run.dpu_hours, 3),
                        "price": round(run.dpu_hours * p["glue_dpu_hour"], 2),
                    }
                    for run in runs
                },
            }
        )
    return {
        "spark_bytes": pipeline.spark_bytes,
        "max_batch_bytes": settings.limits.max_batch_bytes,
        "rows": rows,
        "assumptions": [
            f"one node types and merges {SINGLE_NODE_MIB_PER_SECOND:g} MiB of CSV a second (bench/etl.py); on Spark "
            f"each executor reads and stages its files at {STAGING_MIB_PER_SECOND:g} MiB/s, then merges its share at "
            f"{SPARK_SHARE_OF_ONE_NODE:g} of one node's rate (bench/engines.py): measured on 2 cores here, to be "
            "confirmed on Glue",
            f"a Spark job gets a G.1X executor per spark_worker_bytes ({pipeline.spark_worker_bytes:,}) and a driver, "
            f"at most spark_max_workers ({pipeline.spark_max_workers}), each billed while the job runs (auto scaling "
            "may bill less)",
            "a job's start and its modules' install are left out on both engines; a minute is billed at least",
        ],
    }


def parse_usage(params: Mapping[str, Any], base: Usage) -> Usage:
    """`base` with the caller's parameters (query strings or JSON values), every one checked."""
    known = {f.name for f in fields(Usage)}
    changes: dict[str, Any] = {}
    for name, raw in params.items():
        if name not in known:
            raise UsageError(name, f"unknown parameter; known: {', '.join(sorted(known))}")
        if name == "region":
            regions = prices()["regions"]
            if raw not in regions:
                raise UsageError(name, f"no price table for {raw!r}; known: {', '.join(regions)}")
            changes[name] = raw
        elif name == "storage_split":
            changes[name] = _split(raw)
        else:
            changes[name] = _number(name, raw)
    return replace(base, **changes)


def _number(name: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise UsageError(name, "must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UsageError(name, f"must be a number, not {raw!r}") from None
    low, high = LIMITS[name]
    if not low <= value <= high:  # NaN fails both comparisons and lands here too
        raise UsageError(name, f"must be between {low:g} and {high:g}, not {raw!r}")
    return value


def _split(raw: Any) -> dict[str, float]:
    """`{"STANDARD": 0.6, "GLACIER_IR": 0.4}` or, from a query string, `STANDARD:0.6,GLACIER_IR:0.4`."""
    if isinstance(raw, str):
        try:
            raw = {k.strip(): v for k, v in (part.split(":", 1) for part in raw.split(",") if part.strip())}
        except ValueError:
            raise UsageError(
                "storage_split", "write CLASS:SHARE,CLASS:SHARE, e.g. STANDARD:0.7,GLACIER_IR:0.3"
            ) from None
    if not isinstance(raw, dict) or not raw:
        raise UsageError("storage_split", 'must map storage classes to shares, e.g. {"STANDARD": 1.0}')
    classes = prices()["s3_storage_gb_month"]
    split = {}
    for cls, share in raw.items():
        if cls not in classes:
            raise UsageError("storage_split", f"unknown storage class {cls!r}; known: {', '.join(classes)}")
        split[cls] = _number("storage_split", share)
    if abs(sum(split.values()) - 1) > 0.001:
        raise UsageError("storage_split", f"the shares add up to {sum(split.values()):g}, not 1")
    return split


@dataclass
class Line:
    service: str
    item: str
    quantity: float
    unit: str
    unit_price: float  # for `per` units
    per: float
    monthly: float


def estimate(usage: Usage) -> dict[str, Any]:
    """The monthly total and a line per service item, with the quantity and unit price each used."""
    p = prices()
    lines: list[Line] = []

    def add(service: str, item: str, quantity: float, unit: str, unit_price: float, per: float = 1.0) -> None:
        lines.append(
            Line(service, item, round(quantity, 4), unit, unit_price, per, round(quantity * unit_price / per, 2))
        )

    for cls, share in usage.storage_split.items():
        add("S3", f"storage {cls}", usage.stored_gb * share, "GB-month", p["s3_storage_gb_month"][cls])
    files = usage.files_per_day * DAYS
    runs = usage.pipeline_runs_per_day * DAYS
    put_requests = files * 2 + runs * usage.datasets_per_run * 10  # upload + archive copy; ~10 Delta writes a dataset
    get_requests = files * 3 + usage.queries_per_day * DAYS * 100  # validate, ETL read, archive check; ~100 a query
    add("S3", "PUT, COPY, LIST requests", put_requests, "requests", p["s3_put_per_1000"], 1000)
    add("S3", "GET requests", get_requests, "requests", p["s3_get_per_1000"], 1000)
    invocations = usage.lambda_invocations_per_day * DAYS
    add("Lambda", "requests", invocations, "requests", p["lambda_per_million_requests"], 1_000_000)
    gb_seconds = invocations * usage.lambda_memory_mb / 1024 * usage.lambda_avg_ms / 1000
    add("Lambda", "compute", gb_seconds, "GB-seconds", p["lambda_gb_second"])
    add(
        "Step Functions",
        "state transitions",
        runs * usage.transitions_per_run,
        "transitions",
        p["step_functions_per_1000_transitions"],
        1000,
    )
    dpu_hours = job_dpu_hours(usage, p)
    add(
        "Glue", "ETL jobs (per-run minimum billed; one job for a small run)", dpu_hours, "DPU-hours", p["glue_dpu_hour"]
    )
    if usage.spark_share:
        spark_hours = runs * usage.spark_jobs_per_run * usage.spark_dpu_minutes_per_job / 60
        add("Glue", "Spark batch jobs (workers x minutes, auto scaled)", spark_hours, "DPU-hours", p["glue_dpu_hour"])
    housekeeping_hours = usage.housekeeping_runs_per_month * usage.housekeeping_dpus
    housekeeping_hours *= max(usage.housekeeping_minutes * 60, p["glue_job_minimum_seconds"]) / 3600
    add(
        "Glue",
        "housekeeping job (compaction, VACUUM; [schedules] housekeeping; a minute at least)",
        housekeeping_hours,
        "DPU-hours",
        p["glue_dpu_hour"],
    )
    crawler_hours = usage.crawls_per_month * crawl_dpu_hours(usage.crawler_dpus, usage.crawler_minutes, p)
    add(
        "Glue",
        "crawlers (on a raw layout change; 10 minutes at least)",
        crawler_hours,
        "DPU-hours",
        p["glue_crawler_dpu_hour"],
    )
    objects = max(0.0, usage.catalog_objects - p["glue_catalog_free_objects"])
    add(
        "Glue",
        "Data Catalog storage above 1M objects",
        objects,
        "objects",
        p["glue_catalog_per_100k_objects_month"],
        100_000,
    )
    requests = max(0.0, usage.catalog_requests_per_day * DAYS - p["glue_catalog_free_requests"])
    add(
        "Glue",
        "Data Catalog requests above 1M",
        requests,
        "requests",
        p["glue_catalog_per_million_requests"],
        1_000_000,
    )
    minimum_gb = p["athena_minimum_mb_per_query"] / 1024
    scanned_tb = usage.queries_per_day * DAYS * max(usage.gb_scanned_per_query, minimum_gb) / 1024
    add("Athena", "data scanned (10 MB minimum a query)", scanned_tb, "TB", p["athena_per_tb_scanned"])
    # The quality gate of a big run: one Athena query per dataset, reading its batch (its rows and key columns). A
    # small run's job audits on DuckDB, inside the minute it is billed anyway.
    datasets_per_run = usage.datasets_per_run
    batch_gb = usage.files_per_day * usage.avg_file_mb / 1024 / max(usage.pipeline_runs_per_day, 1e-9)
    gate_gb = max(batch_gb / datasets_per_run, minimum_gb) if datasets_per_run else 0.0
    gate_tb = runs * (1 - usage.single_job_share) * datasets_per_run * gate_gb / 1024
    add(
        "Athena",
        "quality gate of big runs (the batch's rows; 10 MB minimum a query)",
        gate_tb,
        "TB",
        p["athena_per_tb_scanned"],
    )
    add(
        "DynamoDB",
        "writes (on demand)",
        usage.dynamodb_writes_per_day * DAYS,
        "write units",
        p["dynamodb_per_million_writes"],
        1_000_000,
    )
    add(
        "DynamoDB",
        "reads (on demand)",
        usage.dynamodb_reads_per_day * DAYS,
        "read units",
        p["dynamodb_per_million_reads"],
        1_000_000,
    )
    add("DynamoDB", "storage", usage.dynamodb_storage_gb, "GB-month", p["dynamodb_storage_gb_month"])
    publishes = max(0.0, usage.sns_publishes_per_day * DAYS - p["sns_free_publishes"])
    add("SNS", "publishes above 1M", publishes, "publishes", p["sns_per_million_publishes"], 1_000_000)
    add("CloudWatch", "log ingestion", usage.cloudwatch_logs_gb_per_month, "GB", p["cloudwatch_logs_ingest_gb"])
    add("CloudWatch", "custom metrics", usage.cloudwatch_metrics, "metrics", p["cloudwatch_per_metric_month"])
    if usage.kms_keys or usage.kms_requests_per_day:
        add("KMS", "keys", usage.kms_keys, "key-months", p["kms_per_key_month"])
        add("KMS", "requests", usage.kms_requests_per_day * DAYS, "requests", p["kms_per_10k_requests"], 10_000)
    if usage.vpc_interface_endpoints:
        hours = usage.vpc_interface_endpoints * usage.vpc_azs * HOURS
        add(
            "VPC endpoints", "interface endpoint hours", hours, "endpoint-AZ-hours", p["vpc_interface_endpoint_az_hour"]
        )
        add("VPC endpoints", "data processed", usage.vpc_endpoint_gb_per_month, "GB", p["vpc_endpoint_per_gb"])
    if usage.firehose_gb_per_day:
        add("Firehose", "data ingested", usage.firehose_gb_per_day * DAYS, "GB", p["firehose_per_gb"])
    add(
        "API Gateway",
        "requests",
        usage.api_requests_per_day * DAYS,
        "requests",
        p["api_gateway_per_million_requests"],
        1_000_000,
    )
    by_service: dict[str, float] = {}
    for line in lines:
        by_service[line.service] = round(by_service.get(line.service, 0) + line.monthly, 2)
    return {
        "monthly_total": round(sum(line.monthly for line in lines), 2),
        "currency": p["currency"],
        "region": usage.region,
        "prices_as_of": p["as_of"],
        "price_source": p["source"],
        "by_service": by_service,
        "lines": [asdict(line) for line in lines],
        "usage": {**asdict(usage), "storage_split": dict(usage.storage_split)},
        "assumptions": [
            f"a month is {DAYS} days",
            "each file: 2 PUT-class requests (upload, archive copy) and 3 GETs (validate, ETL read, archive check)",
            "each dataset of a run: about 10 PUT-class requests (Delta data files and log); each query: about 100 GETs",
            "Glue jobs are billed per second with a 1-minute minimum per run, at least 2 DPUs (Spark's two workers); "
            "a run within single_job_bytes is one job run (every dataset, the audit, curated/), a bigger one a job "
            "per dataset and the master merge; a crawler runs only when a dataset's raw layout changes, billed at "
            "least 10 minutes a crawl",
            "housekeeping (compaction and VACUUM of every table) is one Glue job run each time [schedules] "
            "housekeeping fires, on the job's two workers, billed a minute at least",
            "the quality gate reads each run's batch, not the whole tables: in a small run's job on DuckDB, in a big "
            "run one Athena query per dataset",
            "free tiers are applied only where they are permanent (Data Catalog, SNS); Lambda's is not counted",
            "gateway VPC endpoints (S3, DynamoDB) are free; interface endpoints are priced per AZ-hour",
        ],
    }
