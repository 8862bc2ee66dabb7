"""The price table (`prices.json`, with its source and date) and the length of a month."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")


DAYS = 30.4375  # an average month


HOURS = DAYS * 24


def prices() -> dict[str, Any]:
    """The price table."""
    return json.loads(PRICES_FILE.read_text())


def crawl_dpu_hours(dpus: float, minutes: float, p: Mapping[str, Any]) -> float:
    """The DPU-hours one crawler run is billed: 10 minutes at least."""
    return dpus * max(minutes * 60, p["glue_crawler_minimum_seconds"]) / 3600


def job_dpu_hours(usage: Any, p: Mapping[str, Any]) -> float:
    """The DPU-hours a month of single-node Glue job runs is billed: each run of each job a minute at least (the Spark
    batch jobs are priced on their own line)."""
    seconds = max(usage.glue_minutes_per_job * 60, p["glue_job_minimum_seconds"])
    jobs = usage.glue_jobs_per_run - usage.spark_jobs_per_run
    return usage.pipeline_runs_per_day * DAYS * jobs * usage.glue_dpus * seconds / 3600
