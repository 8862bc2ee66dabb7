"""`lakehouse deploy`, `teardown` and `drift`: a stage's resources on AWS (or on the local stage's moto)."""

from __future__ import annotations

import json
import sys

import click

from chalicelib.config import config_files
from lakehouse import localstage
from lakehouse.cli.pipeline import engine_option
from lakehouse.ops import CONFIG_DIR, connect, project_settings, stage_settings
from lakehouse.output import console, out, print_changes, print_drift


@click.command()
@click.option("--stage", "stage_name", default="dev", show_default=True)
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change and change nothing.")
def deploy(stage_name: str, plan_only: bool) -> None:
    """Create or update everything of an AWS stage that `chalice deploy` does not make (IAM roles, buckets,
    ledger, queues, topics, Glue, Athena, the state machine, an API key where used); idempotent, and a run
    that failed half-way is completed by the next. Then: chalice deploy --stage STAGE."""
    import sys

    import boto3

    from chalicelib.aws import Clients, account_id
    from chalicelib.errors import DeploymentError
    from chalicelib.stage.roles import lifecycle_buckets
    from deploy import glue_wheels
    from deploy.chalice_project import preflight, write_stage
    from deploy.plan import plan
    from deploy.provision import provision
    from lakehouse.ops import definition_files

    if stage_name == localstage.STAGE:
        raise click.UsageError("the local stage is deployed by `lakehouse up`")
    settings = project_settings()
    problems = preflight(
        settings, settings.stage(stage_name), python=sys.version_info[:2], cli_region=boto3.Session().region_name
    )
    if problems:
        raise DeploymentError(f"stage {stage_name} cannot be deployed as it is:\n  " + "\n  ".join(problems))
    settings, stage = stage_settings(stage_name)
    clients = Clients.for_stage(stage)
    if plan_only:
        with console.status(f"reading stage {stage_name}"):
            changes = plan(settings, stage, clients, config_files(CONFIG_DIR))
            changes += glue_wheels.changes(clients.s3, settings, stage, f"lakehouse deploy --stage {stage_name}")
        print_changes(changes, f"lakehouse deploy --stage {stage_name} would change (--plan: nothing changed)")
        return
    provision(settings, stage, clients, config_files(CONFIG_DIR), progress=lambda m: console.print(f"  {m}"))
    with console.status("the Glue jobs' wheels (pip download, once per change of the pins)"):
        console.print(f"  {glue_wheels.ensure(clients.s3, settings, stage)}", highlight=False)
    lifecycle = lifecycle_buckets(definition_files(), stage.bucket)  # the sync may touch these buckets only
    written = write_stage(settings, stage, account_id(clients.sts), lifecycle=lifecycle)
    console.print(f"  chalice project: {', '.join(written) or 'up to date'} (the stage's names and Lambda policies)")
    console.print(f"deployed; next: chalice deploy --stage {stage_name}", highlight=False)


@click.command()
@click.option("--stage", "stage_name", default="dev", show_default=True)
@click.option("--yes", "apply", is_flag=True, help="Delete. Without it: only list what would be deleted.")
@click.option("--delete-data", is_flag=True, help="Also the lake bucket (every version), its access logs, the ledger.")
def teardown(stage_name: str, apply: bool, delete_data: bool) -> None:
    """Delete what `lakehouse deploy` made (run `chalice delete --stage STAGE` first). The data is kept unless
    --delete-data; a teardown that failed half-way is finished by running it again."""
    from chalicelib.aws import Clients
    from deploy.teardown import teardown as run

    if stage_name == localstage.STAGE:
        raise click.UsageError("the local stage goes with `lakehouse down`")
    settings, stage = stage_settings(stage_name)
    deleted, kept = run(
        settings,
        stage,
        Clients.for_stage(stage),
        apply=apply,
        delete_data=delete_data,
        progress=lambda m: console.print(f"  {m}", highlight=False),
    )
    if not deleted:
        out.print(f"nothing of stage {stage_name} left to delete", highlight=False)
    for what in kept:
        out.print(f"kept: {what} (--delete-data deletes it)", highlight=False)
    if deleted and not apply:
        out.print(f"a dry run: `lakehouse teardown --stage {stage_name} --yes` deletes these", highlight=False)


@click.command(hidden=True)
@click.option("--stage", "stage_name", default="dev", show_default=True)
@click.pass_context
def provision(ctx: click.Context, stage_name: str) -> None:
    """The old name of `lakehouse deploy`."""
    ctx.invoke(deploy, stage_name=stage_name, plan_only=False)


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def drift(stage_name: str, as_json: bool) -> None:
    """Compare the stage's declared setup with what is deployed; write the report to reports/drift/. Exit 1 on
    drift."""
    from chalicelib.stage.drift import run_report

    settings, stage = connect(stage_name)
    with console.status("reading the stage's resources back"):
        report = run_report(settings, stage)
    if as_json:
        out.print_json(json.dumps(report.as_dict(), default=str))
    else:
        print_drift(report)
    deployed = report.deployment and report.deployment["config_fingerprint"]
    from chalicelib.stage.declared import config_fingerprint

    if deployed and deployed != config_fingerprint(config_files(CONFIG_DIR)):
        console.print(
            f"[yellow]config/ has changed since the last deployment[/yellow]: lakehouse deploy --stage {stage_name}"
        )
    console.print(f"written: {', '.join(f's3://{stage.bucket}/{k}' for k in report.keys)}", highlight=False)
    sys.exit(1 if report.drifted else 0)


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def doctor(stage_name: str) -> None:
    """What can be checked before deploying STAGE (credentials and account, regions, the Python Chalice deploys
    with, bucket names free or ours, Lambda concurrency, the Glue module pins, the ledger table's migration, Step
    Functions' validation of the definition, Lake Formation's default grants, Glue's and Athena's quotas): a line
    each, OK, WARN (worth knowing) or what to do. Exit 1 if any needs fixing."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.aws import Clients, ClientSettings, client
    from lakehouse.doctor import run_checks

    try:
        settings, stage = connect(stage_name)
    except (BotoCoreError, ClientError) as exc:  # the first check, and every other one needs it
        console.print(f"[red]FIX[/red] credentials: {exc} (aws configure, or AWS_PROFILE)", highlight=False)
        sys.exit(1)
    checks = run_checks(
        settings,
        stage,
        Clients.for_stage(stage),
        client("lambda", ClientSettings.for_stage(stage)),
        python=(sys.version_info[0], sys.version_info[1]),
        cli_region=boto3.Session().region_name,
    )
    for check in checks:
        mark = "[yellow]WARN[/yellow]" if check.warn else "[green]OK [/green]" if check.ok else "[red]FIX[/red]"
        out.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    sys.exit(0 if all(c.ok for c in checks) else 1)


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@engine_option("Run every batch of the smoke on this engine: spark exercises the Glue Spark jobs.")
def smoke(stage_name: str, engine: str | None) -> None:
    """After deploying: drop a small generated set, wait for its run, check the ledger, the Delta tables, one SQL
    query and the API's /status, then take back what it added. Each step with its time; exit 1 naming the step
    that failed."""
    from lakehouse.smoke import Smoke, Step

    settings, stage = connect(stage_name)

    def report(step: Step) -> None:
        mark = "[green]ok  [/green]" if step.ok else "[red]FAIL[/red]"
        out.print(f"{mark} {step.name:<9} {step.seconds:7.1f} s  {step.detail}", highlight=False)

    steps = Smoke(settings, stage, report=report, engine=engine).run()
    out.print(f"smoke passed on stage {stage_name} in {sum(s.seconds for s in steps):.0f} s", highlight=False)
