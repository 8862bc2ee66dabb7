"""The two engines on bench/etl.py's data: the initial load of ~5 M orders rows, then the 1 M-row MERGE, on one node
(DuckDB + delta-rs) and on Spark (Sail in local mode, as the local stage runs it), in one run on this machine.

    python bench/engines.py [--rows 5000000] [--batch 1000000] [--files 8] [--engines single,spark,spark-merge]

Each batch is delivered as `--files` CSV files in S3 on a moto server: the single-node engine streams them through
its one process, Spark's tasks read them side by side (`spark.read_batch`). Each phase runs in a fresh process.
Spark is measured two ways: as the local stage runs it (a processed/ table keeps a change data feed, which Sail
cannot write, so Sail cleans and delta-rs commits: "spark"), and with Sail's own MERGE on a table without the feed,
the path Glue's Delta Lake runs ("spark-merge"). Peak memory is the phase process's growth in resident memory, plus
the Sail server's peak (its own process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from etl import MEMORY, generate, run_phase  # noqa: E402  (bench/etl.py: the same data)

PHASE = r"""
import json, resource, sys, time
sys.path[:0] = [sys.argv[4], sys.argv[4] + "/glue_scripts"]
engine_name, phase, work = sys.argv[1], sys.argv[2], sys.argv[3]

def rss_kb(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        return {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("VmRSS", "VmHWM"))}

import pathlib, tempfile
from chalicelib.aws import ClientSettings, client
from chalicelib.config import load_settings
from chalicelib.ledger import FileRecord
from lakehouse_etl import delta, sources, spark, transform
from lakehouse_etl.transform import table_schema
contract = load_settings(sys.argv[4] + "/config").datasets["orders"]
memory = int(sys.argv[5])
s3_settings = ClientSettings.from_env()  # the moto server main() started
records = [FileRecord(f"bench/{k}", "bench-raw", k, None, "orders", format="csv") for k in json.loads(sys.argv[6])]
files = [r.file_id for r in records]
engine = spark.local_session() if engine_name != "single" else None
before, start, out = rss_kb()["VmRSS"], time.perf_counter(), {}
uri = work + "/processed_orders"
version = 1 if phase == "load" else 2
with tempfile.TemporaryDirectory(dir=work) as scratch:
    if engine is None:
        s3 = client("s3", s3_settings)
        raw = sources.stream_batch(s3, records, contract, pathlib.Path(scratch), memory_limit=memory)
        with transform.clean(raw, contract, files=files, memory_limit=memory, spill_dir=scratch) as cleaned:
            rows = cleaned.rows.num_rows
            delta.merge_batch(uri, contract, cleaned.rows, app_id="bench", version=version, storage_options={},
                              memory_limit=memory)
    else:
        raw = spark.read_batch(engine, records, contract, scratch + "/batch", s3_settings, memory)
        out["staged_seconds"] = time.perf_counter() - start  # Spark's tasks read the files and staged them
        cleaned = spark.clean(engine, raw, contract, None, files)
        rows = cleaned.rows.count()
        if engine_name == "spark-merge" and delta.open_table(uri, {}) is None:  # a table without the feed
            delta.ensure_table(uri, table_schema(contract), [contract.partition_column], {})
            delta.open_table(uri, {}).alter.set_table_properties({"delta.enableChangeDataFeed": "false"})
        spark.merge(engine, uri, contract, cleaned.rows, app_id="bench", version=version, storage_options={},
                    scratch=scratch, memory_limit=memory)
out["seconds"] = time.perf_counter() - start
out["rows"] = rows
out["growth_mb"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
if engine is not None:
    out["sail_peak_mb"] = rss_kb(spark._local["server"].pid)["VmHWM"] / 1024
print(json.dumps(out))
"""


def phase(engine: str, name: str, work: Path, keys: list[str]) -> dict:
    return run_phase(PHASE, engine, name, str(work), str(ROOT), str(MEMORY), json.dumps(keys))


def upload_in_parts(s3: Any, path: Path, parts: int) -> list[str]:
    """`path` as `parts` CSV files (each with the header) in the moto server's bucket: a batch of many files, as
    the pipeline's are, which Spark's tasks read side by side."""
    lines = path.read_bytes().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    size = -(-len(rows) // parts)
    keys = []
    for n in range(parts):
        keys.append(f"raw/orders/{path.stem}-{n}.csv")
        s3.put_object(Bucket="bench-raw", Key=keys[-1], Body=b"".join([header, *rows[n * size : (n + 1) * size]]))
    return keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8, help="files a batch is delivered in")
    parser.add_argument("--engines", default="single,spark,spark-merge", help="which of single, spark, spark-merge")
    args = parser.parse_args()
    import boto3

    from lakehouse.localstage import DUMMY_CREDENTIALS, serve_moto

    port = 19_000 + os.getpid() % 1000
    serve_moto(port)  # the files are read from S3, as on a stage: by the driver, or by Spark's tasks
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-east-1", **DUMMY_CREDENTIALS})
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench-raw")
    work = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    generate(work, args.rows, args.batch)
    keys = {"load": upload_in_parts(s3, work / "orders.csv", args.files)}
    keys["merge"] = upload_in_parts(s3, work / "batch.csv", args.files)
    csv_mb = (work / "orders.csv").stat().st_size / 2**20
    print(
        f"{args.rows:,} orders ({csv_mb:.0f} MiB of CSV), then a {args.batch:,}-row batch, each in {args.files} files "
        "on a moto server; one run each"
    )
    for engine in args.engines.split(","):
        table = work / "processed_orders"
        if table.exists():
            import shutil

            shutil.rmtree(table)
        for name in ("load", "merge"):
            r = phase(engine, name, work, keys[name])
            sail = f" + Sail server peak {r['sail_peak_mb']:.0f} MiB" if "sail_peak_mb" in r else ""
            if "staged_seconds" in r:  # Spark's tasks read the files and staged the rows as Parquet
                sail += f"; read and staged by Spark's tasks in {r['staged_seconds']:.1f} s"
            print(
                f"  {engine:11} {name:5} {r['rows']:>10,} rows  {r['seconds']:7.1f} s  "
                f"peak memory: +{r['growth_mb']:.0f} MiB{sail}"
            )


if __name__ == "__main__":
    main()
