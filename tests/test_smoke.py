"""`lakehouse doctor` and `lakehouse smoke`: on the local stage both pass (smoke takes back what it added); on an
AWS stage doctor says what to fix, and a failed smoke step names itself and still cleans up."""

from __future__ import annotations

import json

import pytest
from test_local_stage import lakehouse

from chalicelib.aws import Clients
from chalicelib.errors import LakehouseError
from lakehouse.doctor import run_checks
from lakehouse.smoke import Smoke, SmokeFailed


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("lakehouse-home")
    lakehouse(home, "up")
    yield home
    lakehouse(home, "down")


def _lakehouse(home, *args, timeout=800):
    """`lakehouse ...` in `home`, as test_local_stage.lakehouse runs it, for a command that may take longer."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"lakehouse {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.mark.e2e
def test_doctor_and_smoke_pass_on_the_local_stage_and_smoke_leaves_nothing_behind(home):
    doctor = lakehouse(home, "doctor", "--stage", "local")
    assert doctor.stdout.count("OK ") == 7 and "FIX" not in doctor.stdout, doctor.stdout
    # what only an account answers: moto lacks it, or answers the account's default (Lake Formation)
    assert doctor.stdout.count("WARN") == 4 and doctor.stdout.count("not available on this stage") == 3
    smoke = lakehouse(home, "smoke", "--stage", "local")
    for step in ("drop", "verdicts", "run", "ledger", "tables", "query", "costs", "api", "cleanup"):
        assert f"ok   {step}" in smoke.stdout, (step, smoke.stdout)
    assert "smoke passed on stage local" in smoke.stdout
    assert "costs" in smoke.stdout and "not available on this stage" in smoke.stdout  # only an account reports them
    assert "engines: clickstream single, customers single" in " ".join(smoke.stdout.split()), smoke.stdout


@pytest.mark.e2e
@pytest.mark.timeout(900)  # two pipeline runs on Sail: the smoke set's, and the forced gate failure's
def test_smoke_on_spark_rolls_back_a_batch_that_fails_the_gate_and_leaves_nothing_behind(home):
    """The Spark jobs, as `lakehouse smoke --stage S --engine spark` exercises them on an account (on Sail here)."""
    spark = _lakehouse(home, "smoke", "--stage", "local", "--engine", "spark")
    assert "smoke passed on stage local" in spark.stdout, spark.stdout
    # the forced gate failure on the Spark jobs: the run failed on the gate and its batch was rolled back
    assert "ok   rollback" in spark.stdout and "failed the gate (QualityCheckFailed)" in spark.stdout, spark.stdout
    engines = ", ".join(
        f"{d} spark" for d in ("clickstream", "customers", "order_items", "orders", "products", "reviews")
    )
    assert f"engines: {engines}" in " ".join(spark.stdout.split()), spark.stdout
    assert json.loads(lakehouse(home, "ledger", "--json").stdout) == []  # its files and records are gone
    left = lakehouse(home, "query", "--format", "json", "SELECT count(*) AS n FROM processed_orders").stdout
    assert json.loads(left) == [{"n": 0}]  # its rows are gone from processed/


def test_doctor_on_an_aws_stage_says_what_to_fix(aws_env, settings):
    import boto3
    from botocore.stub import Stubber

    settings = settings.for_account("123456789012")
    stage = settings.stage("dev")
    clients = Clients.for_stage(stage)
    clients.s3.create_bucket(Bucket=stage.bucket)  # ours already: fine
    lam = boto3.client("lambda", region_name=stage.region)
    with Stubber(clients.s3) as s3, Stubber(lam) as lam_stub:
        s3.add_response("head_bucket", {}, {"Bucket": stage.bucket, "ExpectedBucketOwner": "123456789012"})
        s3.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        lam_stub.add_response("get_account_settings", {"AccountLimit": {"ConcurrentExecutions": 10}})
        checks = {c.name: c for c in run_checks(settings, stage, clients, lam, python=(3, 12), cli_region="eu-west-1")}
    assert checks["credentials"].ok and "account 123456789012" in checks["credentials"].detail
    assert not checks["deploy preflight"].ok and "python3.12 runtime" in checks["deploy preflight"].detail
    assert "set AWS_REGION=us-east-1" in checks["deploy preflight"].detail
    assert checks["lake bucket"].ok and "exists, ours" in checks["lake bucket"].detail
    assert (
        not checks["log bucket"].ok
        and 'set log_bucket = "<a name of your own>" under [stages.dev]' in checks["log bucket"].detail
    )
    assert (
        not checks["lambda concurrency"].ok
        and "10 concurrent executions: ask for at least 100" in checks["lambda concurrency"].detail
    )
    assert checks["glue module pins"].ok


def test_a_failed_smoke_step_names_itself_and_the_cleanup_still_runs(settings):
    class Broken(Smoke):
        def drop(self):
            self.files = ["lake/raw/orders/x.csv#v1"]
            return "1 file"

        def verdicts(self):
            raise LakehouseError("not VALID: {'raw/orders/x.csv': 'REJECTED bad header'}")

        def cleanup(self):
            return "cleaned"

    reported = []
    smoke = Broken(settings, settings.stage("local"), report=reported.append)
    with pytest.raises(SmokeFailed, match=r"smoke step verdicts failed: not VALID: \{'raw/orders/x.csv'"):
        smoke.run()
    assert [(s.name, s.ok) for s in reported] == [("drop", True), ("verdicts", False), ("cleanup", True)]


def test_on_aws_smoke_starts_runs_until_its_files_are_processed_and_judges_the_runs_since(settings):
    """The deployed path of the run step, with a pipeline that processes one batch a tick (Step Functions cannot
    run in moto): it ticks until no file waits and no run is in flight, then every run since must have succeeded."""
    from chalicelib.ledger import FileRecord, InMemoryLedger, Status

    ledger = InMemoryLedger()
    for i in range(2):
        record = ledger.claim(FileRecord(f"lake/raw/orders/{i}.csv#v", "lake", f"raw/orders/{i}.csv", "v", "orders"))
        ledger.finish(record.record, Status.VALID, md5=str(i))

    class OneBatchATick:  # a run per tick: the oldest waiting file, processed; the run ends as `outcome`
        def __init__(self, outcome):
            self.outcome, self.ticks = outcome, 0

        def tick(self, force, engine=None):
            self.ticks, self.engine = self.ticks + 1, engine
            batch = ledger.open_batch("orders", take=lambda pending: [pending[0].file_id] if pending else [])
            if batch:
                run = ledger.begin_run()
                ledger.close_batch(batch, self.ticks, {})
                ledger.end_run(run.name, self.outcome, "Boom" if self.outcome == "FAILED" else None)

    smoke = Smoke(settings, settings.stage("local"), engine="spark")
    smoke.ledger, smoke.files = ledger, [f"lake/raw/orders/{i}.csv#v" for i in range(2)]
    pipeline = OneBatchATick("SUCCEEDED")
    assert smoke._aws_run(pipeline, poll=0) == "run(s) run-000001, run-000002 SUCCEEDED"
    assert pipeline.engine == "spark"  # `lakehouse smoke --engine spark`: the runs are started as `run --engine`
    assert smoke.run_name == "run-000002"
    again = Smoke(settings, settings.stage("local"))
    record = ledger.claim(FileRecord("lake/raw/orders/x.csv#v", "lake", "raw/orders/x.csv", "v", "orders"))
    ledger.finish(record.record, Status.VALID, md5="x")
    again.ledger, again.files = ledger, ["lake/raw/orders/x.csv#v"]
    with pytest.raises(LakehouseError, match="run run-000003 FAILED: Boom"):
        again._aws_run(OneBatchATick("FAILED"), poll=0)


def test_smoke_with_an_engine_fails_its_run_step_when_a_plan_put_a_batch_on_the_other_one(settings):
    """`lakehouse smoke --engine spark` judges the plans of the runs it started: a batch the plan put on one node
    (written so here) fails the step, naming the batch and why it went there."""
    from chalicelib.ledger import InMemoryLedger, now_iso

    ledger, since = InMemoryLedger(), now_iso()
    run = ledger.begin_run()
    plan = {"engines": {"orders": "spark (lakehouse run --engine), up to 2 G.1X workers", "customers": "single (x)"}}
    ledger.save_plan(run, plan, 2, 20)
    smoke = Smoke(settings, settings.stage("local"), engine="spark")
    smoke.ledger = ledger
    with pytest.raises(LakehouseError, match=r"every batch on spark, but the plan put \{'customers': 'single \(x\)'\}"):
        smoke._engines(since)
    smoke.engine = None  # no engine asked: the step says where each batch ran
    assert smoke._engines(since) == "engines: customers single, orders spark"


def test_smoke_with_spark_judges_the_forced_gate_failure_and_its_rollback(settings, monkeypatch):
    """`lakehouse smoke --engine spark` ends with a run the gate must fail: the run FAILED on QualityCheckFailed,
    its file FAILED (rolled back) and none of its orders left in processed/; anything else fails the step."""
    from chalicelib.ledger import FileRecord, InMemoryLedger, Status

    smoke = Smoke(settings, settings.stage("local"), engine="spark")
    smoke.ledger, file_id = InMemoryLedger(), "lake/raw/orders/smoke-gate-failure.csv#v"
    record = smoke.ledger.claim(FileRecord(file_id, "lake", "raw/orders/smoke-gate-failure.csv", "v", "orders"))
    smoke.ledger.finish(record.record, Status.VALID, md5="m")
    left = {"rows": 0}
    monkeypatch.setattr(smoke, "_tagged_rows", lambda dataset, key, tag: left["rows"])
    with pytest.raises(LakehouseError, match=r"run run-9 SUCCEEDED \(None\): the quality gate should have failed"):
        smoke._judge_rollback([file_id], "T-", "run-9", "SUCCEEDED", "None")
    with pytest.raises(LakehouseError, match=r"run run-9 FAILED \(States.TaskFailed\)"):
        smoke._judge_rollback([file_id], "T-", "run-9", "FAILED", "States.TaskFailed")
    with pytest.raises(LakehouseError, match="but its file is VALID, not rolled back"):
        smoke._judge_rollback([file_id], "T-", "run-9", "FAILED", "QualityCheckFailed")
    smoke.ledger.set_file(file_id, status=str(Status.FAILED))
    left["rows"] = 5
    with pytest.raises(LakehouseError, match="but 5 of its orders are still in processed/"):
        smoke._judge_rollback([file_id], "T-", "run-9", "FAILED", "QualityCheckFailed")
    left["rows"] = 0
    assert smoke._judge_rollback([file_id], "T-", "run-9", "FAILED", "QualityCheckFailed").startswith(
        "run run-9 failed the gate (QualityCheckFailed), its orders batch rolled back"
    )


def test_the_forced_gate_failure_breaks_the_orders_range_rule_and_nothing_the_etl_refuses(settings):
    import csv

    from chalicelib.quality.checks import check_of

    (rule,) = [r for r in settings.datasets["orders"].rules if check_of(r).name == "range"]
    (column,) = [c for c in settings.datasets["orders"].columns if c.name == "total_amount"]
    path = Smoke(settings, settings.stage("local"))._orders_over_the_range("T-")
    with path.open(newline="") as f:
        totals = [float(row["total_amount"]) for row in csv.DictReader(f)]
    assert totals and all(t > rule.max for t in totals) and rule.severity == "error"
    assert column.max is None or all(t <= column.max for t in totals)  # the ETL keeps them: the gate must judge
