"""The lifecycle sync on many buckets: S3 API calls made, and wall time with concurrency against one at a time.

    python bench/lifecycle.py [--buckets 500] [--differ 50] [--workers 16] [--repeat 2]

A fresh local stage (moto server on loopback). `--buckets` buckets, each defined with three rules (one
definition file per 50 buckets), all but `--differ` of them already configured as defined; the others carry an
older configuration. The sync runs with `--workers` buckets at a time and with one, alternating, each time from
the same starting state, in the same process. `--latency-ms` adds a round trip to every call, as a real
region has and loopback has not. S3 calls are counted per operation from botocore's event hooks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RULES = """
[[buckets."{b}".rules]]
id = "logs-to-ia"
filter = {{ prefix = "logs/" }}
transitions = [{{ days = 30, storage_class = "STANDARD_IA" }}, {{ days = 90, storage_class = "GLACIER_IR" }}]
expiration = {{ days = 400 }}

[[buckets."{b}".rules]]
id = "tmp-expire"
filter = {{ prefix = "tmp/", tags = {{ class = "scratch" }} }}
expiration = {{ days = 3 }}

[[buckets."{b}".rules]]
id = "hygiene"
abort_incomplete_multipart_upload_days = 7
noncurrent_version_expiration = {{ noncurrent_days = 60 }}
"""
OLD = [{"ID": "legacy", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 30}}]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buckets", type=int, default=500)
    parser.add_argument("--differ", type=int, default=50)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="add this to every S3 call of the sync (loopback has ~none)"
    )
    args = parser.parse_args()
    os.environ["LAKEHOUSE_HOME"] = tempfile.mkdtemp(prefix="lakehouse-lifecycle-")
    os.environ["LAKEHOUSE_BATCHER_SECONDS"] = "0"
    sys.path[:0] = [str(ROOT), str(ROOT / "glue_scripts")]

    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.aws import client
    from chalicelib.lifecycle.rules import parse_definitions
    from chalicelib.lifecycle.sync import LifecycleSync
    from lakehouse import localstage
    from lakehouse.ops import project_settings, start_local_stage

    settings = project_settings()
    stage = settings.stage(localstage.STAGE)
    localstage.down()
    start_local_stage(settings)
    try:
        s3 = client("s3")
        names = [f"bench-lifecycle-{i:04d}" for i in range(args.buckets)]
        files = {
            f"buckets-{n // 50:03d}.toml": "".join(RULES.format(b=b) for b in names[n : n + 50])
            for n in range(0, len(names), 50)
        }
        definitions = parse_definitions(files, stage.bucket)
        assert not definitions.problems, definitions.problems
        for name, text in files.items():
            s3.put_object(Bucket=stage.bucket, Key=f"{settings.zones.config}lifecycle/{name}", Body=text.encode())
        differing = set(names[:: max(1, args.buckets // args.differ)][: args.differ])

        def reset(name: str) -> None:
            rules = OLD if name in differing else list(definitions.buckets[name].rules)
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})

        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: s3.create_bucket(Bucket=n), names))
            list(pool.map(reset, names))
        took = time.perf_counter() - started
        print(f"{len(names)} buckets created and configured ({len(differing)} differ) in {took:.1f} s")

        calls: Counter = Counter()
        s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
        if args.latency_ms:  # a round trip to a real region, which the loopback moto server does not have
            s3.meta.events.register("before-send.s3", lambda **_: time.sleep(args.latency_ms / 1000))
        times: dict[int, list[float]] = {args.workers: [], 1: []}
        for _ in range(args.repeat):
            for workers in (args.workers, 1):
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(reset, differing))
                calls.clear()
                sync = LifecycleSync(s3, stage.bucket, settings.zones.config, settings.zones.reports, workers=workers)
                started = time.perf_counter()
                report = sync.run(dry_run=False, who="bench")
                times[workers].append(time.perf_counter() - started)
                changed = {c.bucket for c in report.changed}
                if changed != differing or report.problems or report.failed:
                    print(f"unexpected: changed {len(changed)}, problems {report.problems}, failed {report.failed}")
                    return 1
        print(f"S3 calls of one sync (workers={args.workers}, the last run):")
        for operation, n in sorted(calls.items()):
            print(f"  {operation:36} {n:5}")
        lake_reads = calls["ListObjectsV2"] + calls["GetObject"]
        print(
            f"per defined bucket: {calls['GetBucketLifecycleConfiguration'] / len(names):.2f} reads; per differing "
            f"bucket: {calls['PutBucketLifecycleConfiguration'] / len(differing):.2f} writes (+ 1 history document); "
            f"definitions: {lake_reads} reads for {len(files)} files; rules per bucket: 3"
        )
        many, one = statistics.median(times[args.workers]), statistics.median(times[1])
        for label, median, runs in (
            (f"{args.workers} at a time", many, times[args.workers]),
            ("one at a time", one, times[1]),
        ):
            print(f"wall time, {label}: median {median:.2f} s of {', '.join(f'{t:.2f}' for t in runs)}")
        print(f"one at a time / concurrent: {one / many:.2f}x")
        return 0
    finally:
        localstage.down()


if __name__ == "__main__":
    sys.exit(main())
