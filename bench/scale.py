"""A small update batch against lakes of growing size: does a run's work follow its batch or the lake?

    python bench/scale.py [--orders 100000] [--update 150] [--scales 1,4,16] [--repeats 3]

For each scale s: a lake of s x ORDERS orders (with their order items, clickstream and the other datasets, from
`lakehouse generate`; 2.5 clickstream rows an order, so 16 x 100,000 orders is 4 M clickstream rows) is loaded
into processed/ and curated/ is built. Then, `--repeats` times on a fresh copy of that lake (the median is shown),
one run over an update batch of UPDATE orders from another seed: the
same order ids on other dates, their items and clicks (about 1,000 rows). Timed, per step of that run:
- etl: read, type, check and MERGE the three files into their processed tables (the Glue job's code);
- quality: the gate's scan of each dataset over the rows its batch wrote (DuckDB, as on the local stage);
- curated: the master merge, recomputing the groups the batch touched.
"read" is the bytes the step read through the kernel (`rchar` of /proc/self/io: Parquet files, Delta logs,
the raw files). The tables live in a local directory, as in bench/etl.py, so moto's S3 is not what is timed.
Ratios are each scale's figure over the first scale's, measured in this same process.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "glue_scripts")]

from lakehouse_etl import curated, delta, processed, sources, transform  # noqa: E402
from lakehouse_etl.lake import Lake  # noqa: E402
from lakehouse_etl.local_sql import DuckDBEngine  # noqa: E402

from chalicelib.config import dataset_order, load_settings  # noqa: E402
from chalicelib.ledger import FileRecord  # noqa: E402
from chalicelib.quality import gate  # noqa: E402
from lakehouse.generate import generate  # noqa: E402


class Files:
    """Just the S3 call the ETL's reader makes, over local files."""

    def get_object(self, Bucket: str, Key: str, **kwargs: Any) -> dict[str, Any]:
        return {"Body": open(Key, "rb")}


def read_bytes() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def load(job: processed.Job, folder: Path, manifest: dict, names: list[str], number: int) -> dict[str, Any]:
    """Merge each dataset's generated file as batch `number`; returns each batch's scope for the gate."""
    scopes = {}
    for name in [d for d in dataset_order(job.settings) if d in names]:
        contract = job.settings.datasets[name]
        path = folder / manifest["datasets"][name]["file"]
        fmt = "jsonl" if path.suffix == ".jsonl" else "csv"
        record = FileRecord(f"local/{path}#{number}", "local", str(path), None, name, format=fmt)
        with tempfile.TemporaryDirectory() as scratch:
            raw = sources.stream_batch(Files(), [record], contract, Path(scratch))
            with transform.clean(raw, contract, processed.parent_keys(job, name), [record.file_id]) as cleaned:
                uri = job.lake.processed(name)
                merged = delta.merge_batch(
                    uri, contract, cleaned.rows, app_id=f"processed/{name}", version=number, storage_options={}
                )
                partitions = delta.partition_values(contract, cleaned.rows)
        scopes[name] = gate.BatchScope([record.file_id], partitions, merged.table_rows)
    return scopes


STEPS = ("etl", "quality", "curated")


def one_scale(settings: Any, orders: int, update: int, work: Path, repeats: int) -> dict[str, Any]:
    """Build the lake once, then run the update `repeats` times, each on a fresh copy of it; the median of each
    step's time (bytes read are the same each time)."""
    built = Lake(str(work / "lake"), settings)
    job = processed.Job(settings, settings.stage("local"), None, None, built)  # type: ignore[arg-type]
    big = generate(work / "lake_files", orders=orders, anomaly_rate=0, seed=1, days=365)
    load(job, work / "lake_files", big, list(settings.datasets), 1)
    curated.run(job)
    small = generate(work / "update_files", orders=update, anomaly_rate=0, seed=2, days=365)
    names = ["orders", "order_items", "clickstream"]
    out: dict[str, Any] = {
        "clickstream_rows": delta.open_table(built.processed("clickstream"), {}).count(),
        "batch_rows": sum(small["datasets"][n]["rows_written"] for n in names),
    }
    samples = []
    for i in range(repeats):
        copy = work / f"run{i}"
        shutil.copytree(work / "lake", copy)
        samples.append(update_once(settings, Lake(str(copy), settings), work / "update_files", small, names))
        shutil.rmtree(copy)
    for name in STEPS:
        out[name] = sorted(s[name] for s in samples)[len(samples) // 2]
    out["curated_modes"] = samples[-1]["curated_modes"]
    return out


def update_once(settings: Any, lake: Lake, folder: Path, small: dict, names: list[str]) -> dict[str, Any]:
    """One run over the update batch: each step's time and bytes read."""
    job = processed.Job(settings, settings.stage("local"), None, None, lake)  # type: ignore[arg-type]
    out: dict[str, Any] = {}

    def step(name: str, work_: Any) -> Any:
        start, bytes_ = time.perf_counter(), read_bytes()
        result = work_()
        out[name] = (time.perf_counter() - start, read_bytes() - bytes_)
        return result

    scopes = step("etl", lambda: load(job, folder, small, names, 2))
    engine, now = DuckDBEngine(lake), datetime.now(UTC)
    tables = engine.tables()
    step("quality", lambda: [gate.scan(engine, settings.datasets[n], tables, now, 600, s) for n, s in scopes.items()])
    reports = step("curated", lambda: curated.run(job))
    out["curated_modes"] = sorted({r.mode for r in reports})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders of the smallest lake")
    parser.add_argument("--update", type=int, default=150, help="orders of the update batch")
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the update per scale; the median is shown")
    args = parser.parse_args()
    settings = load_settings(ROOT / "config")
    results = {}
    for scale in (int(s) for s in args.scales.split(",")):
        with tempfile.TemporaryDirectory() as work:
            results[scale] = one_scale(settings, scale * args.orders, args.update, Path(work), args.repeats)
        r = results[scale]
        print(
            f"{scale:>3} x {args.orders} orders ({r['clickstream_rows']:,} clickstream rows), update batch of "
            f"{r['batch_rows']} rows: "
            + ", ".join(f"{s} {r[s][0]:.2f} s / {r[s][1] / 2**20:.1f} MiB read" for s in ("etl", "quality", "curated"))
            + f"; curated {'/'.join(r['curated_modes'])}",
            flush=True,
        )
    first, last = min(results), max(results)
    base, top = results[first], results[last]
    total = (
        sum(base[s][0] for s in ("etl", "quality", "curated")),
        sum(top[s][0] for s in ("etl", "quality", "curated")),
    )
    print(
        f"ratio {last}N/{first}N: "
        + ", ".join(
            f"{s} {top[s][0] / base[s][0]:.2f}x time, {top[s][1] / max(base[s][1], 1):.2f}x read"
            for s in ("etl", "quality", "curated")
        )
        + f"; the whole run {total[1] / total[0]:.2f}x (target: at most 1.3x)"
    )


if __name__ == "__main__":
    main()
