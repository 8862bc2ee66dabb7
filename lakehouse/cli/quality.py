"""`lakehouse quality`: the results of the runs, a check on demand, the rules as DQDL."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from chalicelib.ledger import ledger_for
from lakehouse import localstage
from lakehouse.ops import connect, project_settings
from lakehouse.output import console, out


@click.group()
def quality() -> None:
    """The contracts' quality rules: results of the runs, a check now, DQDL for AWS Glue Data Quality."""


@quality.command("report")
@click.option("--run", "run_name", help="The results of this run (default: each dataset's latest).")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def quality_report(run_name: str | None, stage_name: str, as_json: bool) -> None:
    """What the quality gate found, from the results the runs kept."""
    from lakehouse.quality_report import print_report

    settings, stage = connect(stage_name)
    ledger_ = ledger_for(stage)
    results = []
    for dataset in sorted(settings.datasets):
        history = ledger_.quality_history(dataset, None if run_name else 1)
        results += [h for h in history if run_name is None or h["run"] == run_name]
    if as_json:
        out.print_json(json.dumps(results))
    elif not results:
        console.print(f"no quality results{f' for run {run_name}' if run_name else ''} yet")
    else:
        print_report(out, results, f"quality of run {run_name}" if run_name else "latest quality of each dataset")


@quality.command("check")
@click.argument("datasets", nargs=-1)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--full", is_flag=True, help="Scan whole tables, not the rows each dataset's latest batch wrote.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before an Athena query is stopped.")
def quality_check(datasets: tuple[str, ...], stage_name: str, full: bool, timeout: float) -> None:
    """Check the rules now, as the gate does: on the rows each dataset's latest batch wrote (its keys looked up in
    the whole tables), or with --full on whole tables (one scan per table). Nothing is kept. Exit 1 on an error."""
    from chalicelib.pipeline.steps import RunSteps
    from chalicelib.quality import gate as rules
    from lakehouse.quality_report import counts, print_report
    from lakehouse.query import sql_engine

    settings, stage = connect(stage_name)
    unknown = sorted(set(datasets) - set(settings.datasets))
    if unknown:
        raise click.BadParameter(f"not datasets: {', '.join(unknown)}", param_hint="DATASETS")
    engine = sql_engine(settings, stage, local=stage_name == localstage.STAGE)
    ledger_, tables, now, results = ledger_for(stage), engine.tables(), datetime.now(UTC), []
    steps = RunSteps(settings, stage, ledger_)
    for name in datasets or sorted(settings.datasets):
        latest = None if full else ledger_.batch_state(name)
        batch = {"dataset": name, "batch": int(latest["number"])} if latest else None
        scope = steps.audit_input(batch)[1] if batch else None
        rows, checks = rules.scan(engine, settings.datasets[name], tables, now, timeout, scope)
        results.append(
            {"dataset": name, "batch": batch and batch["batch"], "rows": rows, "checks": [c.__dict__ for c in checks]}
        )
    what = "the processed tables" if full else "each dataset's latest batch (--full: whole tables)"
    print_report(out, results, f"quality of {what} now ({engine.name})")
    sys.exit(1 if counts(results)["ERROR"] else 0)


@quality.command("export-dqdl")
@click.argument("dataset")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout).")
def export_dqdl(dataset: str, output: Path | None) -> None:
    """Write DATASET's rules as an AWS Glue Data Quality (DQDL) ruleset."""
    from chalicelib.quality.dqdl import to_dqdl

    settings = project_settings()
    if dataset not in settings.datasets:
        raise click.BadParameter(f"not a dataset: {dataset}; known: {', '.join(settings.datasets)}")
    text = to_dqdl(settings.datasets[dataset])
    if output:
        output.write_text(text)
        console.print(f"wrote {output}")
    else:
        click.echo(text, nl=False)
