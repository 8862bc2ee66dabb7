"""Validator throughput against bare MD5 and against pyarrow's streaming CSV reader, on the same bytes.

    python bench/validate.py [--gb 1.0] [--runs 3]

Each measurement runs in a fresh subprocess so its peak memory growth (ru_maxrss after minus RSS before)
is its own. Prints times, throughputs and the two ratios the ingest issue sets targets for.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
kind, path = sys.argv[1], sys.argv[2]

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

import hashlib
import pyarrow as pa, pyarrow.csv as pacsv
from chalicelib.config import load_settings
from chalicelib.ingest.validation import validate_stream
settings = load_settings(sys.argv[3] + "/config")
before = rss_kb()
start = time.perf_counter()
if kind == "md5":
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    result = h.hexdigest()
elif kind == "parse":  # pyarrow's streaming reader, one thread, default options
    rows = 0
    for batch in pacsv.open_csv(path, read_options=pacsv.ReadOptions(use_threads=False)):
        rows += batch.num_rows
    result = rows
elif kind == "parse_as_validator":  # the same reader with the validator's options: all strings, quoted newlines
    names = open(path).readline().strip().split(",")
    rows = 0
    for batch in pacsv.open_csv(path, read_options=pacsv.ReadOptions(use_threads=False),
                                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names})):
        rows += batch.num_rows
    result = rows
elif kind == "validate":
    with open(path, "rb", buffering=0) as f:
        verdict = validate_stream(f, key="raw/orders/bench.csv", contract=settings.datasets["orders"],
                                  limits=settings.limits)
    assert verdict.ok, verdict
    result = [verdict.md5, verdict.rows]
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "growth_mb": max(0, peak - before) / 1024, "result": result}))
"""


def write_csv(path: Path, gb: float) -> int:
    rng = random.Random(42)
    header = "order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
    block = "".join(
        f"O{i:09d},C{rng.randint(1, 99999):05d},2025-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z,"
        f"{rng.choice(['placed', 'shipped', 'delivered'])},{rng.uniform(1, 900):.2f},EUR,2025-03-{1 + i % 28:02d}\n"
        for i in range(200_000)
    ).encode()
    target = int(gb * 1024**3)
    with path.open("wb") as f:
        f.write(header.encode())
        written = len(header)
        while written < target:
            f.write(block)
            written += len(block)
    return written


def measure(kind: str, path: Path, runs: int) -> dict:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, kind, str(path), str(ROOT)], capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout))
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "growth_mb": max(r["growth_mb"] for r in results),
        "result": results[0]["result"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        size = write_csv(path, args.gb)
        print(f"file: {size / 1e6:.0f} MB of CSV, median of {args.runs} runs, each in a fresh process")
        measure("md5", path, 1)  # warm the page cache so every measurement reads from memory alike
        md5, parse, same, validate = (
            measure(k, path, args.runs) for k in ("md5", "parse", "parse_as_validator", "validate")
        )
        assert validate["result"][0] == md5["result"], "validator MD5 differs from hashlib's"
        for name, m in (
            ("hashlib.md5", md5),
            ("pyarrow streaming CSV", parse),
            ("  same, validator options", same),
            ("validator (MD5 + parse)", validate),
        ):
            print(
                f"  {name:26s} {m['seconds']:7.3f} s  {size / m['seconds'] / 1e6:7.0f} MB/s  "
                f"peak memory growth {m['growth_mb']:6.1f} MB"
            )
        print(f"validator time / bare streaming parse: {validate['seconds'] / parse['seconds']:.2f}  (target <= 1.15)")
        print(
            f"validator time / parse with the validator's options: {validate['seconds'] / same['seconds']:.2f}  "
            "(the cost of hashing and the stream wrappers)"
        )
        print(f"validator throughput / MD5 throughput: {md5['seconds'] / validate['seconds']:.2f}  (target >= 0.45)")
        print(f"validator peak memory growth: {validate['growth_mb']:.0f} MB  (target < 128 MB)")


if __name__ == "__main__":
    main()
