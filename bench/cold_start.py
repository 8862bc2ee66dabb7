"""Cold start: the time to `import app` in a fresh interpreter, and which heavy libraries it loads.

python bench/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "pyarrow", "deltalake", "duckdb", "polars", "numpy")
PROBE = (
    "import json, sys, time; t = time.perf_counter(); import app; t = time.perf_counter() - t; "
    f"print(json.dumps({{'ms': t * 1000, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {"PATH": "/usr/bin:/bin", "LAKEHOUSE_INGEST_QUEUE": "lakehouse-local-ingest"}
    baseline, runs = [], []
    for _ in range(args.runs):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t = time.perf_counter(); import boto3; print((time.perf_counter() - t) * 1000)",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        baseline.append(float(out.stdout))
        out = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout))
    times = sorted(r["ms"] for r in runs)
    print(
        f"import app, fresh interpreter, {args.runs} runs: median {statistics.median(times):.0f} ms, "
        f"max {times[-1]:.0f} ms  (target < 300 ms)"
    )
    print(
        f"baseline, import boto3 alone: median {statistics.median(baseline):.0f} ms; "
        f"ratio app / boto3: {statistics.median(times) / statistics.median(baseline):.2f}"
    )
    print(f"heavy data libraries imported by app.py: {sorted(set().union(*(r['heavy'] for r in runs))) or 'none'}")


if __name__ == "__main__":
    main()
