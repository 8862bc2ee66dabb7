"""Every name the project gives a resource it derives from a stage: Glue jobs and crawlers, SQL tables, the API
key. One place, so the state machine plan, provisioning, IAM, teardown and drift cannot disagree.
"""

from __future__ import annotations

from chalicelib.config.model import Stage


def crawler_name(stage: Stage, dataset: str) -> str:
    """The Glue crawler over a dataset's raw/ folder (`lakehouse-prod-raw-order-items`)."""
    return f"{stage.project}-{stage.name}-raw-{dataset.replace('_', '-')}"


def job_name(stage: Stage, script: str) -> str:
    """The Glue job named after an entry point or a dataset job (`master_merge.py` -> lakehouse-prod-master-merge)."""
    return f"{stage.project}-{stage.name}-{script.removesuffix('.py').replace('_', '-')}"


PROCESS_SCRIPT = "process_dataset.py"  # the one Glue entry point of every dataset's job (`--dataset <name>`)


def process_job(stage: Stage, dataset: str) -> str:
    """The Glue job that merges a dataset's batches into processed/ (one per dataset: one writer per table)."""
    return job_name(stage, f"process_{dataset}")


SPARK_SCRIPT = "spark_dataset.py"  # the Spark engine's entry point of every dataset's Spark job


def spark_job(stage: Stage, dataset: str) -> str:
    """The Glue Spark job that merges a dataset's batches too big for one node (lakehouse_etl/spark.py)."""
    return job_name(stage, f"spark_{dataset}")


RUN_SCRIPT = "run_batch.py"  # the Glue entry point that runs a small pipeline run whole (`--run <name>`)


def run_job(stage: Stage) -> str:
    """The Glue job that runs a small run whole: every dataset's batch, the quality gate and curated/."""
    return job_name(stage, RUN_SCRIPT)


def api_key_name(stage: Stage) -> str:
    """The API key and usage plan of an api_key stage."""
    return f"{stage.project}-{stage.name}-api"


def table_name(dataset: str) -> str:
    """A dataset's processed table in SQL (Athena and DuckDB alike): `processed_orders`."""
    return f"processed_{dataset}"


def dlq_alarm_name(stage: Stage) -> str:
    """The CloudWatch alarm raised when the ingest dead-letter queue holds a message."""
    return f"{stage.project}-{stage.name}-ingest-dlq-not-empty"
