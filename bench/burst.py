"""How many pipeline executions and Glue job runs a burst of small files costs, on the local stage.

    python bench/burst.py [--files 1000] [--tick 15] [--window SECONDS]

A fresh local stage; the generated sample set is cut into `--files` small files across all datasets and put
into raw/ at once (8 threads), as a burst would land. The validator works through them on the local stage
while the batcher looks at the ledger every `--tick` seconds, with the configured window and thresholds
(`--window` overrides window_seconds), exactly as the schedule runs it on AWS every minute. When every file
is processed the script prints the executions and Glue job runs, against one execution per file (the seed
design: one dataset job and one master merge per file at least).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def split(path: Path, parts: int) -> list[bytes]:
    """A CSV (header repeated) or JSON-lines file cut into `parts` files of whole rows."""
    lines = path.read_bytes().splitlines(keepends=True)
    header, rows = (lines[:1], lines[1:]) if path.suffix == ".csv" else ([], lines)
    n = len(rows)
    return [b"".join(header + rows[i * n // parts : (i + 1) * n // parts]) for i in range(parts)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--tick", type=float, default=15.0, help="seconds between batcher looks (AWS: 60)")
    parser.add_argument("--window", type=int, help="override [pipeline] window_seconds")
    args = parser.parse_args()
    os.environ["LAKEHOUSE_HOME"] = tempfile.mkdtemp(prefix="lakehouse-burst-")
    os.environ["LAKEHOUSE_BATCHER_SECONDS"] = "0"  # this script plays the schedule, at --tick
    sys.path[:0] = [str(ROOT), str(ROOT / "glue_scripts")]

    from chalicelib.aws import client
    from chalicelib.ledger import Status, ledger_for
    from lakehouse import localstage
    from lakehouse.generate import generate
    from lakehouse.ops import project_settings, start_local_stage
    from lakehouse.orchestration import local_pipeline

    settings = project_settings()
    if args.window:
        settings = replace(settings, pipeline=replace(settings.pipeline, window_seconds=args.window))
    stage = settings.stage(localstage.STAGE)
    localstage.down()
    start_local_stage(settings)
    try:
        folder = Path(os.environ["LAKEHOUSE_HOME"]) / "generated"
        manifest = generate(folder, orders=2000, anomaly_rate=0.0, seed=3)
        sizes = {d: (folder / m["file"]).stat().st_size for d, m in manifest["datasets"].items()}
        total = sum(sizes.values())
        share = {d: max(1, round(args.files * s / total)) for d, s in sizes.items()}
        share[max(share, key=share.get)] += args.files - sum(share.values())
        bodies = [
            (d, f"part-{i:04d}{Path(m['file']).suffix}", body)
            for d, m in manifest["datasets"].items()
            for i, body in enumerate(split(folder / m["file"], share[d]))
        ]
        s3, ledger = client("s3"), ledger_for(stage)
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda b: s3.put_object(Bucket=stage.bucket, Key=f"raw/{b[0]}/burst/{b[1]}", Body=b[2]), bodies
                )
            )
        print(f"{len(bodies)} files put in {time.monotonic() - start:.1f} s", flush=True)
        with local_pipeline(settings, stage, localstage.EXECUTIONS_DIR) as (pipeline, orchestrator):
            while True:
                tick = pipeline.tick()
                elapsed = time.monotonic() - start
                statuses = [r.status for r in ledger.files()]
                done = sum(s == Status.PROCESSED for s in statuses)
                progress = f"{done}/{len(bodies)} processed"
                print(f"{elapsed:6.0f} s  {tick.action:8} {tick.run or '':11} {progress}  {tick.detail}", flush=True)
                if done + sum(s in (Status.REJECTED, Status.DUPLICATE) for s in statuses) >= len(bodies):
                    break
                if tick.action != "started":
                    time.sleep(args.tick)
            executions = orchestrator.finished
        glue_runs = sum(len(e["glue_runs"]) for e in executions)
        rules = settings.pipeline
        print(f"\nwindow {rules.window_seconds} s, start_files {rules.start_files}, tick {args.tick} s")
        print(f"files: {len(bodies)}, executions: {len(executions)}, Glue job runs: {glue_runs}")
        for e in executions:
            datasets = len(e["input"]["crawlers"])
            print(f"  {e['name']}: {e['status']}, {len(e['glue_runs'])} Glue runs, {datasets} datasets")
        print(f"one execution per file: {len(bodies)} executions, at least {2 * len(bodies)} Glue job runs")
        per_file = f"{len(executions) / len(bodies):.4f} executions, {glue_runs / len(bodies):.4f} Glue runs"
        print(f"per file: {per_file}")
        return 0 if all(e["status"] == "SUCCEEDED" for e in executions) else 1
    finally:
        localstage.down()


if __name__ == "__main__":
    sys.exit(main())
