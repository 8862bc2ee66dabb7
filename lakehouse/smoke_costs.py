"""What the smoke's runs cost on an account, beside what `lakehouse cost` assumes (`lakehouse smoke`'s costs step).

Each Glue job run since the smoke began: its ExecutionTime and DPU-seconds (Glue's DPUSeconds where it reports them,
for auto-scaled and Flex runs; else the run's capacity times its time), against the estimate's DPU-seconds for such
a job. Each quality gate query: the bytes Athena scanned against the size of the Delta table it read (the gate
reads only its batch's rows and the rules' columns, so a scan near the table's size says it read everything).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types_boto3_athena import AthenaClient
    from types_boto3_athena.type_defs import QueryExecutionTypeDef
    from types_boto3_glue import GlueClient

# The gate's one scan per table (chalicelib/quality/gate.py: scan_sql) begins so, and names its table after FROM
GATE_QUERY = re.compile(r"^SELECT\s+count\(\*\) AS row_count\b.*?\bFROM \(SELECT .*? FROM (\w+)", re.S)


def assumed_dpu_seconds(spark: bool) -> float:
    """What `lakehouse cost` bills one job run (chalicelib.cost.estimate.Usage's defaults)."""
    from chalicelib.cost.estimate import Usage

    usage = Usage()
    if spark:
        return usage.spark_dpu_minutes_per_job * 60
    return usage.glue_dpus * usage.glue_minutes_per_job * 60


def glue_job_runs(glue: GlueClient, jobs: dict[str, bool], since: datetime) -> list[str]:
    """A line per run of `jobs` (name -> runs on Spark) started since `since`, oldest first."""
    lines: list[tuple[datetime, str]] = []
    for job, spark in jobs.items():
        for page in glue.get_paginator("get_job_runs").paginate(JobName=job):
            runs = [r for r in page["JobRuns"] if r["StartedOn"] >= since]
            for run in runs:
                seconds = float(run.get("ExecutionTime", 0))
                dpu_seconds = float(run.get("DPUSeconds") or float(run.get("MaxCapacity", 0)) * seconds)
                lines.append(
                    (
                        run["StartedOn"],
                        f"{job} {run['JobRunState']}: {seconds:.0f} s, {dpu_seconds:.0f} DPU-s "
                        f"(lakehouse cost assumes {assumed_dpu_seconds(spark):.0f})",
                    )
                )
            if len(runs) < len(page["JobRuns"]):  # newest first: the rest of the pages are older still
                break
    return [line for _, line in sorted(lines)]


def gate_scans(
    athena: AthenaClient, workgroup: str, since: datetime, table_bytes: Callable[[str], int | None]
) -> list[str]:
    """A line per quality gate query run in `workgroup` since `since`: bytes scanned against the table's size."""
    lines = []
    for query in _queries_since(athena, workgroup, since):
        found = GATE_QUERY.match(query.get("Query", ""))
        if not found:
            continue
        table, scanned = found[1], int(query.get("Statistics", {}).get("DataScannedInBytes", 0))
        size = table_bytes(table)
        share = f" ({scanned / size:.0%} of its {size:,} bytes)" if size else ""
        lines.append(f"gate {table}: {scanned:,} bytes scanned{share}")
    return sorted(lines)


def _queries_since(athena: AthenaClient, workgroup: str, since: datetime) -> Iterator[QueryExecutionTypeDef]:
    """The workgroup's query executions submitted since `since` (ListQueryExecutions lists newest first)."""
    for page in athena.get_paginator("list_query_executions").paginate(WorkGroup=workgroup):
        ids = page.get("QueryExecutionIds", [])
        for start in range(0, len(ids), 50):  # BatchGetQueryExecution takes 50 ids
            got = athena.batch_get_query_execution(QueryExecutionIds=ids[start : start + 50])["QueryExecutions"]
            for query in got:
                if query.get("Status", {}).get("SubmissionDateTime", since) < since:
                    return
                yield query
