"""CLI commands that need no running stage, and the demo itself (the README's promise)."""

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import ROOT

from chalicelib.errors import ConfigError, DeploymentError, LedgerError
from lakehouse.cli import main
from lakehouse.stepfunctions import TaskError

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"


def test_check_validates_a_local_file_like_the_lambda(tmp_path):
    good, bad = tmp_path / "orders_1.csv", tmp_path / "whatever.csv"
    good.write_bytes(H + R)
    bad.write_bytes(H.replace(b",", b";") + R)
    ok = CliRunner().invoke(main, ["check", str(good), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["rows"] == 1
    rejected = CliRunner().invoke(main, ["check", str(bad), "--dataset", "orders", "--json"])
    assert rejected.exit_code == 2 and json.loads(rejected.output)["code"] == "WRONG_DELIMITER"


def test_check_prints_a_readable_verdict_by_default(tmp_path):
    good, ragged = tmp_path / "orders_1.csv", tmp_path / "orders_2.csv"
    good.write_bytes(H + R + R.replace(b"O1", b"O2"))
    ragged.write_bytes(H + R + b"O2,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR\n")
    ok = CliRunner().invoke(main, ["check", str(good)])
    assert ok.exit_code == 0 and ok.output.startswith("VALID orders_1.csv as orders: 2 rows, 7 columns (csv, "), (
        ok.output
    )
    assert len(ok.output.splitlines()) == 1
    bad = CliRunner().invoke(main, ["check", str(ragged)])
    assert bad.exit_code == 2 and bad.output == (
        "REJECTED orders_2.csv as orders: RAGGED_ROW: a row has 6 fields where the header has 7 (line 3)\n"
    )


def test_version_is_the_installed_packages():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"lakehouse, version {version('serverless-lakehouse')}\n"


def test_doctor_checks_the_same_stage_as_the_other_commands_by_default(aws_env, monkeypatch):
    from lakehouse import localstage

    monkeypatch.setattr(localstage, "running", lambda: None)
    defaults = {
        p.default
        for c in (main.commands["query"], main.commands["ledger"], main.commands["doctor"])
        for p in c.params
        if p.name == "stage_name"
    }
    assert defaults == {localstage.STAGE}
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1 and "the local stage is not running: start it with `lakehouse up`" in result.output


def test_check_says_which_datasets_exist_when_it_cannot_tell(tmp_path):
    path = tmp_path / "inventory.csv"
    path.write_bytes(b"sku\nA\n")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2 and "pass --dataset (one of clickstream, customers" in result.output


@pytest.mark.e2e
def test_the_demo_runs_end_to_end_and_passes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 2 duplicate, 12 rejected, 9 valid" in result.stdout
    assert "no new entry, no second acceptance" in result.stderr and "demo passed" in result.stderr
    assert "every planted anomaly was rejected with its reason, and nothing else was" in result.stderr
    assert "run-000001: SUCCEEDED" in result.stdout and "   ok CrawlAndProcess.1.RunWholeBatch" in result.stdout
    # a small run is one Glue job run: every dataset, the audit and curated/
    assert "sizing 1,546,050 bytes <= 268,435,456: one job" in result.stdout and "PublishCurated" not in result.stdout
    assert "executions: 1, Glue job runs: 1" in result.stderr
    assert "glue job runs: 1 (" in result.stderr and "curated/: daily_sales_by_category MERGE" in result.stderr
    assert "top_products: 10 rows (first 5)" in result.stdout  # the example queries ran
    assert not (tmp_path / "local.json").exists()  # it stopped the stage it started


@pytest.mark.e2e
def test_the_demo_with_a_failing_job_shows_the_alert_and_failed_files_then_recovers(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "demo", "--fail-job", "orders"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "run-000001: FAILED" in result.stdout
        and "sns lakehouse-local-alerts: lakehouse: run run-000001 FAILED" in result.stdout
    )
    # the FAILED ledger entries
    assert "PipelineError: orders: forced failure (lakehouse run --fail-job orders)" in result.stdout
    assert "NotRun: not run: orders failed in an earlier level" in result.stdout
    assert "run-000002: SUCCEEDED" in result.stdout and "demo passed" in result.stderr


@pytest.mark.e2e
@pytest.mark.timeout(900)  # three demos
def test_a_demo_on_a_stage_in_use_adds_to_it_and_fresh_sets_it_aside(tmp_path):
    """`make demo` on a local stage that holds data runs on it (its files new to the lake, judged alone) and keeps
    it; `--fresh` runs on an empty stage with that data set aside, not lost."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAKEHOUSE_HOME"] = str(tmp_path)

    def demo(*options: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "lakehouse.cli", "demo", *options]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "demo passed" in result.stderr, result.stdout + result.stderr
        return result

    first = demo("--keep-running")
    assert "run-000002: SUCCEEDED" in first.stdout and (tmp_path / "local.json").exists()
    again = demo()  # the running stage, with the first demo's data
    assert "the local stage holds data: the demo adds its files to it" in " ".join(again.stderr.split())
    assert "summary: 2 duplicate, 12 rejected, 9 valid" in again.stdout  # its own files: new, not duplicates
    assert "run-000003: SUCCEEDED" in again.stdout and "run-000004: SUCCEEDED" in again.stdout  # the history goes on
    assert not (tmp_path / "local.json").exists() and (tmp_path / "snapshot" / "manifest.json").exists()  # kept
    fresh = demo("--fresh")
    assert "run-000001: SUCCEEDED" in fresh.stdout and "holds data" not in fresh.stderr
    (aside,) = tmp_path.glob("before-demo-*")
    assert (aside / "snapshot" / "manifest.json").exists() and (aside / "executions").is_dir()
    assert not (tmp_path / "snapshot" / "manifest.json").exists()  # the fresh demo's own data went with it


def test_executions_of_an_aws_stage_name_the_state_that_failed():
    from lakehouse.cli.pipeline import failed_step

    events = [
        {"type": "ExecutionStarted"},
        {"type": "MapStateEntered", "stateEnteredEventDetails": {"name": "ProcessLevels"}},
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "RunJob"}},
        {"type": "TaskFailed", "taskFailedEventDetails": {"error": "States.TaskFailed", "cause": "{}"}},
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "HandleFailure"}},
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "DatasetJobFailed"}},
    ]

    class Paginator:
        def paginate(self, executionArn):
            return [{"events": events[:3]}, {"events": events[3:]}]

    class Sfn:
        def get_paginator(self, name):
            assert name == "get_execution_history"
            return Paginator()

    assert failed_step(Sfn(), "arn") == {"failed_state": "RunJob", "error": "States.TaskFailed"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "--stage", "local"], "the local stage is deployed by `lakehouse up`"),
        (["teardown", "--stage", "local"], "the local stage goes with `lakehouse down`"),
        (["deploy", "--stage", "qa", "--plan"], "stages = 'qa': no such stage; known: ['dev', 'local', 'prod']"),
        (["serve", "--stage", "qa"], "stages = 'qa': no such stage"),
        (["serve", "--port", "0"], "Invalid value for '--port'"),
    ],
)
def test_deploy_teardown_and_serve_refuse_what_they_cannot_do(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_serve_says_when_its_port_is_taken(monkeypatch):
    import socket

    from deploy.chalice_project import chalice_stage_env
    from lakehouse import localstage

    for name, value in chalice_stage_env("local").items():  # the server sets them; monkeypatch puts them back
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(localstage, "running", lambda: localstage.LocalStage(1, 1, "us-east-1"))
    monkeypatch.setattr(localstage, "use", lambda stage: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output, result.output


def test_cost_prints_the_estimate_and_its_what_ifs():
    result = CliRunner().invoke(main, ["cost", "--scenario", "heavy"])
    assert result.exit_code == 0, result.output
    assert "what if:" in result.output and "lifecycle rules:" in result.output and "partition pruning:" in result.output
    # where the engine threshold sits: a batch by size on each engine, and the one the stage picks
    assert "Spark from spark_bytes = 8 GiB" in result.output
    assert re.search(r"8 GiB\s+│ spark\s+│ 2 G\.1X, 6\.8 min\s+│\s+[\d.]+ │ 5 G\.1X, 3\.8 min", result.output)
    # each price column says what it holds
    assert re.search(
        r"┃ dataset batch\s+┃ picked ┃ single node\s+┃ USD a batch ┃ Spark\s+┃ USD a batch ┃", result.output
    )
    assert "no price table" not in result.output
    # a config section's name is printed as written, not read as rich markup
    assert "each time [schedules] housekeeping fires" in " ".join(result.output.split())
    bad = CliRunner().invoke(main, ["cost", "--set", "glue_dpus=-1"])
    assert bad.exit_code == 2 and "glue_dpus: must be between 0 and 1000" in bad.output


def test_cost_in_a_region_without_prices_says_whose_prices_it_shows(monkeypatch, settings):
    from dataclasses import replace

    from lakehouse.cli import cost

    monkeypatch.setattr(cost, "project_settings", lambda: replace(settings, region="eu-west-1"))
    result = CliRunner().invoke(main, ["cost"])
    assert result.exit_code == 0, result.output
    assert "monthly estimate: this configuration, us-east-1" in result.output
    assert result.output.count("eu-west-1") == 1  # only where it says so:
    assert "no price table for eu-west-1 (the stage's region): this estimate is at us-east-1 prices" in result.output


def test_an_aws_error_is_one_line_not_a_traceback(monkeypatch):
    from botocore.exceptions import NoCredentialsError

    from deploy import provision

    def no_credentials(*args, **kwargs):
        raise NoCredentialsError()

    monkeypatch.setattr(provision, "provision", no_credentials)
    result = CliRunner().invoke(main, ["deploy", "--stage", "dev"])
    assert result.exit_code == 1 and result.output == "error: AWS: Unable to locate credentials\n", result.output


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("datasets/orders.toml", "rules[0].check", "nullness", "must be one of [...]"),
        LedgerError("Failed to query on ledger table t: throttled"),
        DeploymentError("s3://b: could not delete 1 objects"),
        TaskError("States.TaskFailed", "the job failed"),
    ],
)
def test_any_lakehouse_error_is_one_line_and_exit_1_not_a_traceback(aws_env, monkeypatch, error):
    from deploy import provision

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(provision, "provision", fails)
    result = CliRunner().invoke(main, ["deploy", "--stage", "dev"])
    assert result.exit_code == 1 and result.output == f"error: {error}\n", result.output
