"""Maintenance Glue job runs under the pipeline's run lock: the housekeeping schedule on AWS and on the local stage,
and the commands that change tables (`etl`, `curated rebuild`, `table housekeeping`, `smoke`'s cleanup), which
against a deployed stage start Glue job runs and never run a Glue script on the laptop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from chalicelib.aws import Clients, ClientSettings, client
from chalicelib.cost import estimate as cost
from chalicelib.errors import ConfigError
from chalicelib.ledger import DynamoDBLedger, InMemoryLedger
from chalicelib.pipeline.maintenance import LEASE, JobRunFailed, Maintenance
from chalicelib.pipeline.schedules import Schedule, next_time, runs_per_month
from lakehouse.cli import main

T0 = datetime(2026, 12, 8, 2, 59, tzinfo=UTC)


class Glue:
    """Glue's job runs as a table of states, for the paths moto cannot take (a run that fails)."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[str, str]] = {}
        self.started: list[tuple[str, dict[str, str]]] = []
        self.refuse = False

    def start(self, job, arguments):
        if self.refuse:
            raise RuntimeError("ConcurrentRunsExceededException")
        self.started.append((job, dict(arguments)))
        run_id = f"jr_{len(self.started)}"
        self.runs[run_id] = ("RUNNING", "")
        return run_id

    def state(self, job, run_id):
        return self.runs[run_id]


def chores(stage, ledger, glue, at):
    clock = {"now": at}
    return Maintenance(stage, ledger, glue, now=lambda: clock["now"], sleep=lambda _: None), clock


# -- the lock ---------------------------------------------------------------------------------------------------
def test_a_housekeeping_run_holds_the_run_lock_until_its_job_run_ends_however_it_ends(stage):
    ledger, glue = InMemoryLedger(), Glue()
    m, _ = chores(stage, ledger, glue, T0)
    started = m.housekeeping()
    assert started["action"] == "started" and glue.started == [("lakehouse-local-housekeeping", {})]
    assert ledger.job_lock().job_run == started["job_run"] and ledger.active_run() is None
    assert ledger.begin_run() is None  # no pipeline run while it runs
    assert m.housekeeping()["action"] == "skipped" and len(glue.started) == 1
    assert m.settle() is None  # still running
    glue.runs[started["job_run"]] = ("FAILED", "OutOfMemory")
    assert m.settle() and ledger.lock_holder() is None  # a failed job run frees the lock too
    assert ledger.begin_run().name == "run-000001"


def test_a_housekeeping_run_that_finds_a_pipeline_run_skips_and_names_it(stage):
    ledger, glue = InMemoryLedger(), Glue()
    run = ledger.begin_run()
    skipped = chores(stage, ledger, glue, T0)[0].housekeeping()
    assert skipped["action"] == "skipped" and glue.started == []
    assert f"the run lock is held by pipeline run {run.name} (in flight)" in skipped["detail"]
    assert ledger.lock_holder() == run.name  # the run keeps it


def test_a_holder_that_died_before_starting_its_job_run_frees_the_lock_when_its_lease_ends(stage):
    ledger, glue = InMemoryLedger(), Glue()
    m, clock = chores(stage, ledger, glue, T0)
    lock = m.take("lakehouse etl")  # ... and the command was killed here
    clock["now"] = T0 + LEASE - timedelta(seconds=1)
    assert m.settle() is None and ledger.lock_holder() == lock.holder
    clock["now"] = T0 + LEASE + timedelta(seconds=1)
    assert m.settle() == lock.holder and ledger.lock_holder() is None


def test_glue_refusing_the_job_run_gives_the_lock_back(stage):
    ledger, glue = InMemoryLedger(), Glue()
    glue.refuse = True
    with pytest.raises(RuntimeError, match="ConcurrentRuns"):
        chores(stage, ledger, glue, T0)[0].housekeeping()
    assert ledger.lock_holder() is None


def test_jobs_of_one_command_run_in_order_and_a_failed_one_stops_the_rest_and_frees_the_lock(stage):
    ledger, glue = InMemoryLedger(), Glue()

    class Ending(Glue):
        def state(self, job, run_id):
            ended = ("FAILED", "boom") if job == "b" else ("SUCCEEDED", "")
            return ("RUNNING", "") if self.polls.setdefault(run_id, 0) == 0 else ended

    glue = Ending()
    glue.polls = {}
    seen = []

    def progress(line):
        seen.append((line, ledger.lock_holder()))
        run_id = line.split()[1].rstrip(":")
        glue.polls[run_id] = glue.polls.get(run_id, 0) + 1

    m, _ = chores(stage, ledger, glue, T0)
    with pytest.raises(JobRunFailed, match="Glue job run jr_2 of b ended FAILED: boom"):
        m.run("lakehouse etl", [("a", {}), ("b", {"--x": "1"}), ("c", {})], progress)
    assert [job for job, _ in glue.started] == ["a", "b"]
    assert all(holder and holder.startswith("job#lakehouse etl#") for _, holder in seen)  # held throughout
    assert ledger.lock_holder() is None


def test_a_command_interrupted_while_its_job_runs_leaves_the_lock_to_the_job_run(stage):
    ledger, glue = InMemoryLedger(), Glue()
    m, _ = chores(stage, ledger, glue, T0)

    def interrupt(line):
        raise KeyboardInterrupt  # Ctrl-C while it waits

    with pytest.raises(KeyboardInterrupt):
        m.run("curated rebuild", [("lakehouse-local-master-merge", {"--rebuild": "yes"})], interrupt)
    lock = ledger.job_lock()
    assert lock.job_run == "jr_1" and m.settle() is None  # the job run still writes: nobody else may
    glue.runs["jr_1"] = ("SUCCEEDED", "")
    assert m.settle() == lock.holder and ledger.lock_holder() is None


def test_a_pipeline_run_is_not_started_while_a_job_holds_the_lock_and_the_tick_says_who(settings, stage):
    from chalicelib.pipeline.batcher import Pipeline

    ledger, glue = InMemoryLedger(), Glue()
    chores(stage, ledger, glue, T0)[0].housekeeping()

    class Orchestrator:
        def start(self, name, input_):
            raise AssertionError("no run may start")

        def status(self, name):
            return None

    from test_pipeline import accept

    accept(ledger, "orders", "o.csv", T0)  # a file waiting, and the run forced
    tick = Pipeline(settings, stage, ledger, Orchestrator()).tick(force=True)
    assert tick.action == "busy" and "job#housekeeping#" in tick.detail and "holds the run lock" in tick.detail


# -- the schedule -----------------------------------------------------------------------------------------------
def test_the_housekeeping_schedule_is_an_eventbridge_cron_played_once_each_time_it_fires(settings):
    expression = settings.schedules["housekeeping"]
    assert expression == "cron(0 3 * * ? *)"
    assert next_time(expression, T0) == datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    assert runs_per_month(expression) == 30 and runs_per_month("rate(12 hours)") == 60
    assert runs_per_month("cron(0 3 ? * SUN *)") in (4, 5)  # day of week 1-7 from Sunday, as EventBridge counts
    schedule = Schedule("housekeeping")
    looks = [T0 + timedelta(minutes=m) for m in range(0, 3)] + [T0 + timedelta(days=1, minutes=1)]
    assert [schedule.due(expression, t) for t in looks] == [False, True, False, True]  # 02:59, 03:00, 03:01, +1 day
    assert schedule.due(None, looks[-1]) is False  # unscheduled: never
    with pytest.raises(ConfigError, match="not an EventBridge cron expression"):
        next_time("cron(0 3 * *)", T0)


def test_the_app_declares_the_housekeeping_schedule_of_lakehouse_toml(settings):
    import app

    declared = {s.name: str(s.schedule_expression) for s in app.app.event_sources if hasattr(s, "schedule_expression")}
    assert declared["start_housekeeping"] == settings.schedules["housekeeping"]


def test_the_housekeeping_lambda_starts_one_glue_job_run_under_the_lock_and_the_batcher_frees_it(
    client, provisioned, stage
):
    from moto.moto_api import state_manager

    glue, job = provisioned.glue, "lakehouse-local-housekeeping"
    tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    ledger = DynamoDBLedger(provisioned.dynamodb, stage.ledger_table)
    state_manager.set_transition(model_name="glue::job_run", transition={"progression": "manual", "times": 1000})
    try:
        started = client.lambda_.invoke("start_housekeeping", tick).payload
        assert started["action"] == "started"
        (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
        assert run["Id"] == started["job_run"] == ledger.job_lock().job_run
        again = client.lambda_.invoke("start_housekeeping", tick).payload
        assert again["action"] == "skipped" and len(glue.get_job_runs(JobName=job)["JobRuns"]) == 1
        assert client.lambda_.invoke("batcher", tick).payload["action"] == "idle"
        assert ledger.job_lock() is not None  # the job run still runs: the lock stays
    finally:
        state_manager.set_transition(model_name="glue::job_run", transition={"progression": "immediate"})
    client.lambda_.invoke("batcher", tick)  # the job run has ended: the batcher's tick frees the lock
    assert ledger.lock_holder() is None


# -- commands against a deployed stage --------------------------------------------------------------------------
@pytest.fixture
def dev(aws_env, settings, monkeypatch):
    """The dev stage's ledger and Glue jobs, made by provisioning's own code in (in-process) moto, and no Glue script
    may run on this machine. (Its TLS-only bucket policy turns away in-process moto's plain requests: the bucket is
    made without it.)"""
    import lakehouse.jobs
    from deploy.provision import PROJECT_DIR, ensure_glue_jobs, ensure_ledger_table

    settings = settings.for_account("123456789012")
    stage = settings.stage("dev")
    clients = Clients.for_stage(stage)
    clients.s3.create_bucket(Bucket=stage.bucket)
    ensure_ledger_table(clients.dynamodb, stage)
    ensure_glue_jobs(clients.glue, clients.s3, clients.sts, settings, stage, PROJECT_DIR)

    def local(*args, **kwargs):
        raise AssertionError(f"a Glue script ran on this machine: {args}")

    monkeypatch.setattr(lakehouse.jobs.subprocess, "run", local)
    monkeypatch.setattr(lakehouse.jobs.subprocess, "Popen", local)
    monkeypatch.setattr(lakehouse.jobs, "GLUE_POLL_SECONDS", 0)
    glue = client("glue", ClientSettings.for_stage(stage))
    ledger = DynamoDBLedger(client("dynamodb", ClientSettings.for_stage(stage)), stage.ledger_table)
    held: list[tuple[str, str | None]] = []  # each StartJobRun, and who held the run lock then

    def record(params, **_):
        held.append((params["JobName"], ledger.lock_holder(), params.get("Arguments", {})))

    glue.meta.events.register("before-parameter-build.glue.StartJobRun", record)
    yield settings, stage, ledger, held
    glue.meta.events.unregister("before-parameter-build.glue.StartJobRun", record)


@pytest.mark.parametrize(
    ("command", "purpose", "jobs"),
    [
        (["table", "housekeeping"], "housekeeping", [("lakehouse-dev-housekeeping", {})]),
        (["curated", "rebuild"], "curated rebuild", [("lakehouse-dev-master-merge", {"--rebuild": "yes"})]),
        (
            ["etl", "--dataset", "orders", "--dataset", "customers"],
            "lakehouse etl",
            [
                ("lakehouse-dev-process-customers", {}),
                ("lakehouse-dev-process-orders", {}),
                ("lakehouse-dev-master-merge", {}),
            ],
        ),
    ],
)
def test_a_command_against_a_deployed_stage_starts_glue_job_runs_under_the_lock(dev, command, purpose, jobs):
    _, _, ledger, held = dev
    result = CliRunner().invoke(main, [*command, "--stage", "dev"])
    assert result.exit_code == 0, result.output
    assert [(job, args) for job, _, args in held] == jobs
    assert all(holder.startswith(f"job#{purpose}#") for _, holder, _ in held)
    assert "SUCCEEDED" in result.output and ledger.lock_holder() is None


def test_a_command_against_a_deployed_stage_refuses_while_a_run_holds_the_lock(dev):
    _, _, ledger, held = dev
    run = ledger.begin_run()
    result = CliRunner().invoke(main, ["table", "housekeeping", "--stage", "dev"])
    assert result.exit_code == 1 and held == []
    assert f"housekeeping not started: the run lock is held by pipeline run {run.name} (in flight)" in result.output


def test_smokes_cleanup_on_a_deployed_stage_is_a_master_merge_job_run_under_the_lock(dev):
    from lakehouse.smoke import Smoke

    settings, stage, ledger, held = dev
    smoke = Smoke(settings, stage)
    smoke.files, smoke.run_name = ["not-in-the-ledger"], "run-000001"
    assert smoke.cleanup().startswith("the rows (Glue job run jr_")
    ((job, holder, arguments),) = held
    assert job == "lakehouse-dev-master-merge" and holder.startswith("job#smoke cleanup#")
    assert arguments == {"--forget": smoke.tag, "--rebuild": "yes"} and ledger.lock_holder() is None


# -- the cost ---------------------------------------------------------------------------------------------------
def test_lakehouse_cost_prices_the_housekeeping_job_from_its_schedule(settings):
    from dataclasses import replace

    def line(estimate):
        (found,) = [x for x in estimate["lines"] if x["item"].startswith("housekeeping job")]
        return found

    usage = cost.usage_for_stage(settings)
    assert usage.housekeeping_runs_per_month == 30  # cron(0 3 * * ? *)
    priced = line(cost.estimate(usage))
    hours = 30 * usage.housekeeping_dpus * max(usage.housekeeping_minutes, 1) / 60
    assert priced["quantity"] == pytest.approx(hours) and priced["monthly"] == pytest.approx(hours * 0.44, abs=0.01)
    unscheduled = replace(settings, schedules={k: v for k, v in settings.schedules.items() if k != "housekeeping"})
    assert line(cost.estimate(cost.usage_for_stage(unscheduled)))["monthly"] == 0
    weekly = replace(settings, schedules={**settings.schedules, "housekeeping": "cron(0 3 ? * SUN *)"})
    assert cost.usage_for_stage(weekly).housekeeping_runs_per_month in (4, 5)
    answered = cost.estimate_for(settings, None, {"housekeeping_minutes": "10"})
    assert line(answered)["quantity"] == pytest.approx(30 * 2 * 10 / 60)
    assert any("housekeeping" in a for a in answered["assumptions"])


# -- the local stage ---------------------------------------------------------------------------------------------
def test_the_local_stage_plays_the_housekeeping_schedule_as_a_local_job_run_under_the_lock(lake_job, settings, stage):
    from test_local_stage import wait_until

    from lakehouse.jobs import LocalChores

    chores, ledger = LocalChores(), lake_job.ledger
    assert chores.tick(settings, stage, T0) is None  # 02:59: the first look sets 03:00
    started = chores.tick(settings, stage, T0 + timedelta(minutes=1))
    assert started and started.startswith("housekeeping started: jr_local_")
    lock = ledger.job_lock()
    assert lock.job == "lakehouse-local-housekeeping" and ledger.begin_run() is None  # held while it runs
    # a later look frees the lock once the job's process has ended (the next firing is tomorrow)

    def freed():
        chores.tick(settings, stage, T0 + timedelta(minutes=2))
        return ledger.lock_holder() is None

    wait_until(freed, timeout=120)
    assert chores.glue.runs[lock.job_run].ended == ("SUCCEEDED", "")
    tables = [r["table"] for r in chores.glue.reports[lock.job_run]]
    assert any(t.endswith("/processed/orders") for t in tables) and any(
        t.endswith("/curated/customer_summary") for t in tables
    )
