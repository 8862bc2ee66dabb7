"""Run the glue_scripts/ entry points as local processes against a stage, in dependency order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config import Settings, Stage, dataset_order
from chalicelib.errors import LakehouseError
from chalicelib.names import PROCESS_SCRIPT

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

GLUE_SCRIPTS = Path(__file__).resolve().parent.parent / "glue_scripts"


def rejected_by_reason(batches: list[dict[str, Any]]) -> Counter[str]:
    """Rows rejected by reason code over the batch reports of one dataset."""
    total: Counter[str] = Counter()
    for batch in batches:
        total.update(batch["rejected_by_reason"])
    return total


def rejected_rows_by_reason(s3: S3Client, settings: Settings, stage: Stage) -> dict[str, Counter[str]]:
    """Rows rejected by reason code, per dataset, from the rejected.parquet of every batch under rejected/ that is
    still in its table (a batch the quality gate rolled back comes again under a new number once requeued)."""
    from lakehouse.rejected import read_parquet, rejected_batches

    out: dict[str, Counter[str]] = {}
    for found in rejected_batches(s3, settings, stage):
        if found.rolled_back is None:
            codes = read_parquet(s3, stage.bucket, found.key, ["_reason_code"]).column(0).to_pylist()
            out.setdefault(found.dataset, Counter()).update(codes)
    return out


def run_script(
    script: str, stage: Stage, arguments: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run one Glue entry point as a process (as the local stage's Glue); returns its JSON report."""
    where = ["--stage", stage.name, "--bucket", stage.bucket, *(["--account", stage.account] if stage.account else [])]
    result = subprocess.run(
        [sys.executable, str(GLUE_SCRIPTS / script), *where, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(GLUE_SCRIPTS)},
    )
    if result.returncode != 0:  # the exception first, as Glue's ErrorMessage gives it; then where it came from
        lines = result.stderr.strip().splitlines() or [""]
        tail = "\n".join(lines[-15:])
        raise LakehouseError(f"{script} failed (exit {result.returncode}): {lines[-1]}\n{tail}")
    report: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def run_etl(
    settings: Settings,
    stage: Stage,
    datasets: list[str] | None = None,
    curated: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, list[dict[str, Any]]]:
    """processed/ for each dataset (parents before children), then the master merge."""
    reports: dict[str, list[dict[str, Any]]] = {}
    for dataset in dataset_order(settings):
        if datasets and dataset not in datasets:
            continue
        progress(f"process_{dataset}")
        reports[dataset] = run_script(PROCESS_SCRIPT, stage, ["--dataset", dataset])
    if curated:
        progress("master_merge")
        reports["curated"] = run_script("master_merge.py", stage)
    return reports
