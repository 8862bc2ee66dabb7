"""What every glue_scripts/ entry point does: read its arguments, load the stage's settings, run, report.

On AWS Glue the arguments come through `awsglue.utils.getResolvedOptions`; anywhere else (the local stage)
through argparse with the same names. The last line a job prints is its JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any


def arguments(names: Sequence[str], optional: Sequence[str] = ()) -> dict[str, str | None]:
    try:
        from awsglue.utils import getResolvedOptions  # present only inside a Glue job
    except ImportError:
        parser = argparse.ArgumentParser()
        for name in names:
            parser.add_argument(f"--{name}", required=True)
        for name in optional:
            parser.add_argument(f"--{name}")
        return vars(parser.parse_args())
    # getResolvedOptions insists on every name it is given: ask for the optional ones only when passed
    given = [name for name in optional if f"--{name}" in sys.argv]
    return {**dict.fromkeys(optional), **getResolvedOptions(sys.argv, [*names, *given])}


def job_from_arguments(args: dict[str, str | None]) -> Any:
    from chalicelib.aws import client
    from chalicelib.config import load_settings_from_s3
    from lakehouse_etl.processed import Job

    settings = load_settings_from_s3(client("s3"), str(args["bucket"]), "config/")
    if args.get("account"):  # the stage's default bucket names carry it (job_definition passes it)
        settings = settings.for_account(str(args["account"]))
    return Job.for_stage(settings, str(args["stage"]))


def process_dataset() -> None:
    """A dataset's processed/ job (`--dataset NAME`): the batch a pipeline run planned (`--batch N`), every pending
    file (no argument), or taking a batch that failed the quality gate back out of the table (`--rollback N`)."""
    from lakehouse_etl import processed

    def work(job: Any, dataset: str, batch: str | None, rollback: str | None) -> Any:
        if rollback is not None:
            return processed.roll_back_batch(job, dataset, int(rollback))
        return processed.run(job, dataset) if batch is None else processed.run_batch(job, dataset, int(batch))

    main(work, required=["dataset"], optional=["batch", "rollback"])


def spark_dataset() -> None:
    """A dataset's processed/ job on Spark (`--dataset NAME`), with the arguments of `process_dataset`: Glue's Spark
    inside Glue, Sail on the local stage (lakehouse_etl/spark.py). Taking a batch back out is the same on both."""
    from lakehouse_etl import processed, spark

    def work(job: Any, dataset: str, batch: str | None, rollback: str | None) -> Any:
        if rollback is not None:
            return processed.roll_back_batch(job, dataset, int(rollback))
        engine = spark.session()
        if batch is None:
            return processed.run(job, dataset, engine=engine)
        return processed.run_batch(job, dataset, int(batch), engine=engine)

    main(work, required=["dataset"], optional=["batch", "rollback"])


def whole_run() -> None:
    """A small pipeline run whole (`--run NAME`): every dataset's batch, the quality gate, curated/."""
    import os

    from lakehouse_etl import whole_run

    # The local stage's `lakehouse run --fail-job DATASET` for this job; nothing sets it on Glue.
    fail = [d for d in os.environ.get("LAKEHOUSE_FAIL_DATASETS", "").split(",") if d]
    main(lambda job, name: whole_run.run(job, name, fail), required=["run"])


def main(work: Callable[..., Any], required: Sequence[str] = (), optional: Sequence[str] = ()) -> None:
    """Run `work(job, *required arguments, *optional arguments)` and print its JSON report as the last line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = arguments(["stage", "bucket", *required], [*optional, "account"])
    result = work(job_from_arguments(args), *(args[name] for name in [*required, *optional]))
    items = result if isinstance(result, list) else [result]
    print(json.dumps([asdict(r) if is_dataclass(r) and not isinstance(r, type) else r for r in items], default=str))
