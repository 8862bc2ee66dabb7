"""`lakehouse down` and `up` with a lake of about `--gb` GB: the seconds each takes, and that every object version
and ledger item came back (counted before and after). Then a kill: `--kill-gb` more GB written (in the journal
only: no snapshot is taken meanwhile), the stage killed with SIGKILL, and `up` timed, replaying the journal.

    python bench/persistence.py [--gb 1.0] [--kill-gb 0.25]

Runs its own local stage under a temporary LAKEHOUSE_HOME; the objects go under bench/ in the lake bucket (not
raw/: the validator is not what is measured), some in two versions, plus a ledger item per object. Also prints
the rate the writes were taken at (each journaled, on disk before its answer).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBJECT_MB = 16


def lakehouse(home: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"LAKEHOUSE_HOME": home}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def counts(home: str) -> tuple[int, int, int]:
    os.environ["LAKEHOUSE_HOME"] = home
    code = (
        "import boto3, lakehouse\n"
        "lake = lakehouse.connect('local')\n"
        "s3 = boto3.client('s3')\n"
        "pages = s3.get_paginator('list_object_versions').paginate(Bucket=lake.stage.bucket)\n"
        "versions = [v for p in pages for v in p.get('Versions', [])]\n"
        "items = boto3.client('dynamodb').scan(TableName=lake.stage.ledger_table, Select='COUNT')['Count']\n"
        "print(len(versions), sum(v['Size'] for v in versions), items)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    n, size, items = out.stdout.split()
    return int(n), int(size), int(items)


def fill(home: str, gb: float, first: int = 0) -> float:
    code = (
        "import os, boto3, lakehouse\n"
        "lake = lakehouse.connect('local')\n"
        "s3, ddb = boto3.client('s3'), boto3.client('dynamodb')\n"
        f"body = os.urandom({OBJECT_MB} * 1024 * 1024)\n"
        f"for i in range({first}, {first} + int({gb} * 1024 / {OBJECT_MB})):\n"
        "    s3.put_object(Bucket=lake.stage.bucket, Key=f'bench/{i // 2}.bin', Body=body)  # two versions a key\n"
        "    item = {'pk': {'S': f'bench#{i}'}, 'kind': {'S': 'bench'}}\n"
        "    ddb.put_item(TableName=lake.stage.ledger_table, Item=item)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"LAKEHOUSE_HOME": home}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--kill-gb", type=float, default=0.25)
    args = parser.parse_args()
    os.environ["LAKEHOUSE_SNAPSHOT_SECONDS"] = "3600"  # snapshots by `down` only: the kill finds all in the journal
    home = tempfile.mkdtemp(prefix="bench-persistence-")
    lakehouse(home, "up")
    try:
        fill_s = fill(home, args.gb)
        before = counts(home)
        down_s = lakehouse(home, "down")
        snapshot = sum(p.stat().st_size for p in Path(home, "snapshot").glob("state-*.pickle"))
        up_s = lakehouse(home, "up")
        after = counts(home)
        more_s = fill(home, args.kill_gb, first=int(args.gb * 1024 / OBJECT_MB))
        journal = sum(p.stat().st_size for p in Path(home, "snapshot").glob("journal-*.log"))
        before_kill = counts(home)
        os.killpg(json.loads(Path(home, "local.json").read_text())["pid"], signal.SIGKILL)
        replay_s = lakehouse(home, "up")
        after_kill = counts(home)
    finally:
        lakehouse(home, "down", "--discard")
    rate = before[1] / 2**20 / fill_s
    print(f"lake: {before[0]} object versions, {before[1] / 1024**3:.2f} GiB, {before[2]} ledger items")
    print(f"written at {rate:.0f} MiB/s (each write journaled before its answer; {more_s:.1f} s for the kill's part)")
    print(f"lakehouse down: {down_s:.1f} s (snapshot {snapshot / 1024**3:.2f} GiB)   lakehouse up: {up_s:.1f} s")
    print(
        f"after up: {after[0]} object versions, {after[1] / 1024**3:.2f} GiB, {after[2]} ledger items: "
        + _back(before, after)
    )
    print(
        f"then {args.kill_gb:g} GB more ({journal / 1024**3:.2f} GiB of journal), SIGKILL, "
        f"lakehouse up: {replay_s:.1f} s"
    )
    print(
        f"after up: {after_kill[0]} object versions, {after_kill[1] / 1024**3:.2f} GiB, {after_kill[2]} ledger items: "
        + _back(before_kill, after_kill)
    )


def _back(before: tuple[int, int, int], after: tuple[int, int, int]) -> str:
    return "all back" if after[0] >= before[0] and after[1] >= before[1] and after[2] == before[2] else "MISSING"


if __name__ == "__main__":
    main()
