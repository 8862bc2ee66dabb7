"""Item 7 of issue 27: `lakehouse smoke` prints what its runs cost on an account (each Glue job run's ExecutionTime
and DPU-seconds beside `lakehouse cost`'s assumption, each gate query's bytes scanned against its table's size); on
the local stage the step says that only an account reports them. The AWS answers are stubbed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
from botocore.stub import Stubber

from lakehouse.smoke import Smoke
from lakehouse.smoke_costs import assumed_dpu_seconds, gate_scans, glue_job_runs

SINCE = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
GATE_SQL = (
    'SELECT\n  count(*) AS row_count,\n  sum(x) AS r0\nFROM (SELECT "order_id" FROM processed_orders WHERE 1=1) t'
)


def _run(job, minutes_after, seconds, **more):
    return {
        "Id": f"jr_{job}_{minutes_after}",
        "JobName": job,
        "JobRunState": "SUCCEEDED",
        "StartedOn": SINCE + timedelta(minutes=minutes_after),
        "ExecutionTime": seconds,
        **more,
    }


def test_each_glue_job_run_since_the_smoke_began_with_its_dpu_seconds_beside_the_cost_models():
    glue = boto3.client("glue", region_name="us-east-1")
    with Stubber(glue) as stub:
        stub.add_response(
            "get_job_runs",
            {"JobRuns": [_run("process", 5, 70, MaxCapacity=2.0), _run("process", -60, 999, MaxCapacity=2.0)]},
            {"JobName": "process"},
        )
        stub.add_response("get_job_runs", {"JobRuns": [_run("spark", 2, 100, DPUSeconds=450.0)]}, {"JobName": "spark"})
        lines = glue_job_runs(glue, {"process": False, "spark": True}, SINCE)
    assert lines == [  # oldest first; the run before the smoke is not its
        f"spark SUCCEEDED: 100 s, 450 DPU-s (lakehouse cost assumes {assumed_dpu_seconds(True):.0f})",
        f"process SUCCEEDED: 70 s, 140 DPU-s (lakehouse cost assumes {assumed_dpu_seconds(False):.0f})",
    ]
    assert assumed_dpu_seconds(False) == 120  # two DPUs for a minute: the estimate's single-node job


def test_each_gate_query_with_its_bytes_scanned_against_its_tables_size():
    athena = boto3.client("athena", region_name="us-east-1")

    def execution(qid, sql, minutes_after, scanned):
        return {
            "QueryExecutionId": qid,
            "Query": sql,
            "Statistics": {"DataScannedInBytes": scanned},
            "Status": {"State": "SUCCEEDED", "SubmissionDateTime": SINCE + timedelta(minutes=minutes_after)},
        }

    with Stubber(athena) as stub:
        stub.add_response("list_query_executions", {"QueryExecutionIds": ["q1", "q2", "q3"]}, {"WorkGroup": "wg"})
        stub.add_response(
            "batch_get_query_execution",
            {
                "QueryExecutions": [
                    execution("q1", "SELECT count(*) AS n FROM processed_orders", 9, 5),  # the smoke's own query
                    execution("q2", GATE_SQL, 8, 2_500),
                    execution("q3", GATE_SQL, -5, 99),  # before the smoke: listing stops here
                ]
            },
            {"QueryExecutionIds": ["q1", "q2", "q3"]},
        )
        lines = gate_scans(athena, "wg", SINCE, {"processed_orders": 10_000}.get)
    assert lines == ["gate processed_orders: 2,500 bytes scanned (25% of its 10,000 bytes)"]


def test_the_costs_step_on_the_local_stage_says_only_an_account_reports_them(settings):
    smoke = Smoke(settings, settings.stage("local"))
    assert smoke.costs() == (
        "not available on this stage: its Glue jobs run as local processes and DuckDB reports no bytes"
    )


def test_the_costs_step_on_aws_reads_the_stages_jobs_and_workgroup(aws_env, settings):
    from chalicelib.aws import ClientSettings, client

    settings = settings.for_account("123456789012")
    stage = settings.stage("dev")
    smoke = Smoke(settings, stage)
    smoke.started = SINCE
    config = ClientSettings.for_stage(stage)
    glue, athena = client("glue", config), client("athena", config)
    from chalicelib.stage.declared import glue_jobs

    jobs = list(glue_jobs(settings, stage))
    with Stubber(glue) as g, Stubber(athena) as a:
        for job in jobs:
            runs = [_run(job, 1, 61, MaxCapacity=1.0)] if job.endswith("-run-batch") or job == jobs[0] else []
            g.add_response("get_job_runs", {"JobRuns": runs}, {"JobName": job})
        a.add_response("list_query_executions", {}, {"WorkGroup": stage.athena_workgroup})
        detail = smoke.costs()
        g.assert_no_pending_responses()  # every job of the stage was asked
    assert detail.startswith(f"{jobs[0]} SUCCEEDED: 61 s, 61 DPU-s (lakehouse cost assumes 120)"), detail
