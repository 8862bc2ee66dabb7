"""processed/ ETL against the I/O floor: initial load of ~5M orders rows, then a 1M-row MERGE.

    python bench/etl.py [--rows 5000000] [--batch 1000000] [--runs 3]

The floor is pyarrow reading the same CSV and writing it as one Parquet file. The ETL is the real path:
strings from CSV, contract-driven typing and checks in DuckDB, de-duplication, delta-rs MERGE into the
table partitioned by order_date (local disk, so the fake S3 of the local stage is not what is measured).
Each phase runs in a fresh process, `--runs` times (median reported); peak memory is that process's growth
in resident memory. The ETL streams the file and keeps its working memory within `--memory-mb`
([pipeline] etl_memory_bytes), spilling the rest to a scratch folder: peak memory follows that setting, not the
file's size (run it with two `--rows` to see).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAYS = 365
MEMORY = 2 * 1024**3  # the ETL's working memory ([pipeline] etl_memory_bytes); --memory-mb sets it

PHASE = r"""
import json, resource, sys, time
sys.path[:0] = [sys.argv[3], sys.argv[3] + "/glue_scripts"]
phase, work = sys.argv[1], sys.argv[2]

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq, duckdb, deltalake
from chalicelib.config import load_settings
from lakehouse_etl import delta, sources, transform
contract = load_settings(sys.argv[3] + "/config").datasets["orders"]
before, start, out = rss_kb(), time.perf_counter(), {}
if phase.startswith("floor"):
    csv = work + ("/orders.csv" if phase == "floor_load" else "/batch.csv")
    table = pacsv.read_csv(csv)
    pq.write_table(table, work + f"/{phase}.parquet")
    out["rows"] = table.num_rows
else:  # the ETL's own path: the file streamed to a scratch folder, cleaned and merged within `memory` bytes
    import pathlib, tempfile
    from chalicelib.ledger import FileRecord
    memory = int(sys.argv[4])
    csv = work + ("/orders.csv" if phase == "load" else "/batch.csv")
    class Files:  # just the S3 call the reader makes, over a local file
        def get_object(self, Bucket, Key, **kwargs):
            return {"Body": open(Key, "rb")}
    record = FileRecord("bench", "local", csv, None, "orders", format="csv")
    uri = work + "/processed_orders"
    files_before = len(delta.open_table(uri, {}).file_uris()) if phase == "merge" else 0
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        raw = sources.stream_batch(Files(), [record], contract, pathlib.Path(scratch), memory_limit=memory)
        with transform.clean(raw, contract, files=["bench"], memory_limit=memory, spill_dir=scratch) as cleaned:
            n = cleaned.rows.num_rows + cleaned.rejected.num_rows + cleaned.duplicates_dropped
            result = delta.merge_batch(uri, contract, cleaned.rows, app_id="bench",
                                       version=1 if phase == "load" else 2, storage_options={}, memory_limit=memory)
            rejected = cleaned.rejected.num_rows
    out.update(rows=n, rejected=rejected, files_before=files_before,
               files_after=len(delta.open_table(uri, {}).file_uris()), metrics=result.metrics)
out["seconds"] = time.perf_counter() - start
out["growth_mb"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(out))
"""


def touched_days(rows: int, batch: int) -> int:
    """~10% of the days, and enough of them to hold the batch's half of existing orders."""
    return max(DAYS // 10, -(-(batch // 2) * DAYS // rows))


def generate(work: Path, rows: int, batch: int) -> None:
    """The full CSV, then a batch: half updates of existing orders, half new ones, on ~10% of the days."""
    import duckdb

    con = duckdb.connect()
    row = (
        "'O' || lpad(CAST(i AS VARCHAR), 9, '0') AS order_id, 'C' || CAST(i % 99991 AS VARCHAR) AS customer_id, "
        "strftime(TIMESTAMP '2025-01-01' + to_seconds({day} * 86400 + i % 86400), '%Y-%m-%dT%H:%M:%SZ') AS order_ts, "
        "'{status}' AS status, CAST(round((i % 90000) / 100.0 + 1, 2) AS VARCHAR) AS total_amount, 'EUR' AS currency, "
        "strftime(DATE '2025-01-01' + CAST({day} AS INTEGER), '%Y-%m-%d') AS order_date"
    )
    con.execute(
        f"COPY (SELECT {row.format(day=f'(i % {DAYS})', status='placed')} FROM range({rows}) t(i)) "
        f"TO '{work}/orders.csv' (HEADER)"
    )
    half, touched = batch // 2, touched_days(rows, batch)
    existing = row.format(day=f"(i % {DAYS})", status="shipped")
    updates = f"SELECT {existing} FROM range({rows}) t(i) WHERE i % {DAYS} < {touched} LIMIT {half}"
    inserts = f"SELECT {row.format(day=f'(i % {touched})', status='placed')} FROM range({rows}, {rows + half}) t(i)"
    con.execute(f"COPY ((SELECT * FROM ({updates})) UNION ALL ({inserts})) TO '{work}/batch.csv' (HEADER)")


def median_of(runs: int, name: str, work: Path) -> dict:
    """Run a phase `runs` times, each from the same starting state; keep the run with the median time."""
    results = []
    for _ in range(runs):
        shutil.rmtree(work / "processed_orders", ignore_errors=True)
        if name == "merge":  # every MERGE starts from the freshly loaded table
            shutil.copytree(work / "loaded_orders", work / "processed_orders")
        results.append(phase(name, work))
    if name == "load":
        shutil.rmtree(work / "loaded_orders", ignore_errors=True)
        shutil.copytree(work / "processed_orders", work / "loaded_orders")
    return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]


def phase(name: str, work: Path) -> dict:
    return run_phase(PHASE, name, str(work), str(ROOT), str(MEMORY))


def run_phase(code: str, *args: str) -> dict:
    """Run a phase's code in a fresh process; its JSON report (its last line)."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"phase {' '.join(args[:2])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per phase; the median is reported")
    parser.add_argument("--memory-mb", type=int, default=2048, help="the ETL's etl_memory_bytes, in MiB")
    args = parser.parse_args()
    global MEMORY
    MEMORY = args.memory_mb * 2**20
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work, args.rows, args.batch)
        touched = touched_days(args.rows, args.batch)
        size = (work / "orders.csv").stat().st_size
        print(
            f"orders.csv: {args.rows:,} rows, {size / 1e6:.0f} MB, {DAYS} daily partitions; "
            f"batch.csv: {args.batch:,} rows (half updates, half inserts, {touched} partitions)"
        )
        floor_load, load = median_of(args.runs, "floor_load", work), median_of(args.runs, "load", work)
        floor_batch, merge = median_of(args.runs, "floor_batch", work), median_of(args.runs, "merge", work)
        for label, m in (
            ("floor: pyarrow CSV -> Parquet (all)", floor_load),
            ("initial load into Delta", load),
            ("floor: pyarrow CSV -> Parquet (batch)", floor_batch),
            ("MERGE of the batch", merge),
        ):
            print(
                f"  {label:40s} {m['seconds']:7.2f} s  {m['rows'] / m['seconds']:>10,.0f} rows/s  "
                f"peak memory growth {m['growth_mb']:7.0f} MiB"
            )
        metrics = merge["metrics"]
        print(f"initial load / floor: {load['seconds'] / floor_load['seconds']:.2f}  (target <= 2.5)")
        print(
            f"peak memory of the initial load: {load['growth_mb']:.0f} MiB for a {size / 2**20:.0f} MiB CSV = "
            f"{load['growth_mb'] * 2**20 / size:.2f}x its bytes, with etl_memory_bytes = {args.memory_mb} MiB "
            "(target: at most 2x the CSV's bytes plus a constant)"
        )
        print(f"rows rejected by the checks: load {load['rejected']}, batch {merge['rejected']}")
        print(f"MERGE / floor for the batch: {merge['seconds'] / floor_batch['seconds']:.2f}  (target <= 3)")
        print(
            f"MERGE files: {merge['files_before']} in the table; scanned {metrics['num_target_files_scanned']}, "
            f"skipped {metrics['num_target_files_skipped_during_scan']}, rewritten (removed) "
            f"{metrics['num_target_files_removed']}, added {metrics['num_target_files_added']}; "
            f"rows updated {metrics['num_target_rows_updated']:,}, inserted {metrics['num_target_rows_inserted']:,}"
        )
        print(
            f"files rewritten limited to the touched partitions: "
            f"{metrics['num_target_files_removed'] <= touched * max(1, merge['files_before'] // DAYS)}"
        )


if __name__ == "__main__":
    main()
