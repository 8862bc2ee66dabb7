"""The price table (`prices.json`, with its source and date) and the length of a month."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

PRICES_FILE = Path(__file__).with_name("prices.json")


DAYS = 30.4375  # an average month


HOURS = DAYS * 24


def prices() -> dict[str, Any]:
    """The price table."""
    table: dict[str, Any] = json.loads(PRICES_FILE.read_text())
    return table


def crawl_dpu_hours(dpus: float, minutes: float, p: Mapping[str, Any]) -> float:
    """The DPU-hours one crawler run is billed: 10 minutes at least."""
    minimum: float = p["glue_crawler_minimum_seconds"]
    return dpus * max(minutes * 60, minimum) / 3600


class JobUsage(Protocol):
    """What the job price reads of a month's usage (`estimate.Usage`, which imports this module)."""

    @property
    def glue_minutes_per_job(self) -> float:
        """Minutes one job run takes."""
        ...

    @property
    def glue_jobs_per_run(self) -> float:
        """Glue job runs per pipeline run."""
        ...

    @property
    def spark_jobs_per_run(self) -> float:
        """Of those, the Spark batch jobs (priced on their own line)."""
        ...

    @property
    def pipeline_runs_per_day(self) -> float:
        """Pipeline runs a day."""
        ...

    @property
    def glue_dpus(self) -> float:
        """DPUs a job run holds."""
        ...


def job_dpu_hours(usage: JobUsage, p: Mapping[str, Any]) -> float:
    """The DPU-hours a month of single-node Glue job runs is billed: each run of each job a minute at least (the Spark
    batch jobs are priced on their own line)."""
    minimum: float = p["glue_job_minimum_seconds"]
    seconds = max(usage.glue_minutes_per_job * 60, minimum)
    jobs = usage.glue_jobs_per_run - usage.spark_jobs_per_run
    return usage.pipeline_runs_per_day * DAYS * jobs * usage.glue_dpus * seconds / 3600
