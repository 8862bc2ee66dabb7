"""Every name the project gives a resource it derives from a stage: Glue jobs and crawlers, SQL tables, the API
key. One place, so the state machine plan, provisioning, IAM, teardown and drift cannot disagree.
"""

from __future__ import annotations

from chalicelib import APP_NAME
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


# Every Lambda function of app.py, by the name Chalice gives it (a test holds this to app.py's).
LAMBDA_FUNCTIONS = (
    "validate",
    "batcher",
    "lifecycle_sync",
    "drift_report",
    "quality_check",
    "refresh_tables",
    "finish_run",
    "fail_run",
    "start_housekeeping",  # not `housekeeping`: the Glue kind's role has that name
    "api_handler",  # the API's, named so by Chalice
)
# The Glue roles: one per kind of job (a kind's jobs run the same code on different datasets), and the crawlers'.
GLUE_KINDS = ("process", "spark", "run", "housekeeping", "crawler")
HOUSEKEEPING_SCRIPT = "housekeeping.py"  # compaction and VACUUM of every table (chalicelib/pipeline/maintenance.py)
STATE_MACHINE = "state_machine"
_SCRIPT_KINDS = {
    PROCESS_SCRIPT: "process",
    SPARK_SCRIPT: "spark",
    RUN_SCRIPT: "run",
    "master_merge.py": "run",  # the run's last step when its datasets ran in jobs of their own
    HOUSEKEEPING_SCRIPT: "housekeeping",
}


def job_kind(script: str) -> str:
    """The kind of a Glue job's entry point (its role)."""
    return _SCRIPT_KINDS[script]


def role_as_configured(stage: Stage, component: str) -> str:
    """The role `component` runs as, by name, or by ARN where the stage brings its own role (`glue_role` or
    `pipeline_role` given as an ARN: every Glue kind then runs as that one role)."""
    if component in LAMBDA_FUNCTIONS:
        # Chalice's name for a function with a policy file of its own (chalice/deploy/appgraph.py,
        # _create_role_reference: `<app>-<stage>-<function>` when autogen_policy is false)
        return f"{APP_NAME}-{stage.name}-{component}"
    if component in GLUE_KINDS:
        return stage.glue_role if stage.glue_role.startswith("arn:") else f"{stage.glue_role}-{component}"
    if component == STATE_MACHINE:
        return stage.pipeline_role
    known = [*LAMBDA_FUNCTIONS, *GLUE_KINDS, STATE_MACHINE]
    raise ValueError(f"no role for component {component!r}: known are {', '.join(known)}")


def role_name(stage: Stage, component: str) -> str:
    """The name of the IAM role a component runs as on `stage`: a Lambda function by its name (`api_handler`), a
    Glue job kind (`process`, `spark`, `run`, `housekeeping`, `crawler`) or `state_machine`."""
    return role_as_configured(stage, component).rsplit("/", 1)[-1]


RECEIVED_PAST_LEASE_METRIC = "FilesReceivedPastLease"  # the batcher's count of files left RECEIVED (app.py)


def received_alarm_name(stage: Stage) -> str:
    """The CloudWatch alarm raised when files stay RECEIVED past their lease (chalicelib/pipeline/recovery.py)."""
    return f"{stage.ingest_queue}-received-past-lease"


def dlq_alarm_name(stage: Stage) -> str:
    """The CloudWatch alarm raised when the ingest dead-letter queue holds a message."""
    return f"{stage.project}-{stage.name}-ingest-dlq-not-empty"
