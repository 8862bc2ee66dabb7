"""What every glue_scripts/ entry point does: read its arguments, load the stage's settings, run, report.

On AWS Glue the arguments come through `awsglue.utils.getResolvedOptions`; anywhere else (the local stage)
through argparse with the same names. The last line a job prints is its JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any


def arguments(names: list[str]) -> dict[str, str]:
    try:
        from awsglue.utils import getResolvedOptions  # present only inside a Glue job
    except ImportError:
        parser = argparse.ArgumentParser()
        for name in names:
            parser.add_argument(f"--{name}", required=True)
        return vars(parser.parse_args())
    return getResolvedOptions(sys.argv, names)


def job_from_arguments() -> Any:
    from chalicelib.aws import client
    from chalicelib.config import load_settings_from_s3

    from .processed import Job

    args = arguments(["stage", "bucket"])
    settings = load_settings_from_s3(client("s3"), args["bucket"], "config/")
    return Job.for_stage(settings, args["stage"])


def main(work: Callable[[Any], Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = work(job_from_arguments())
    items = result if isinstance(result, list) else [result]
    print(json.dumps([asdict(r) if is_dataclass(r) else r for r in items], default=str))
