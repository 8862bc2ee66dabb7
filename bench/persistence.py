"""`lakehouse down` and `up` with a lake of about `--gb` GB: the seconds each takes, and that every object version
and ledger item came back (counted before and after).

    python bench/persistence.py [--gb 1.0]

Runs its own local stage under a temporary LAKEHOUSE_HOME; the objects go under bench/ in the lake bucket (not
raw/: the validator is not what is measured), some in two versions, plus a ledger item per object.
"""

from __future__ import annotations

import argparse
import os
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


def fill(home: str, gb: float) -> None:
    code = (
        "import os, boto3, lakehouse\n"
        "lake = lakehouse.connect('local')\n"
        "s3, ddb = boto3.client('s3'), boto3.client('dynamodb')\n"
        f"body = os.urandom({OBJECT_MB} * 1024 * 1024)\n"
        f"for i in range(int({gb} * 1024 / {OBJECT_MB})):\n"
        "    s3.put_object(Bucket=lake.stage.bucket, Key=f'bench/{i // 2}.bin', Body=body)  # two versions a key\n"
        "    item = {'pk': {'S': f'bench#{i}'}, 'kind': {'S': 'bench'}}\n"
        "    ddb.put_item(TableName=lake.stage.ledger_table, Item=item)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"LAKEHOUSE_HOME": home}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-persistence-")
    lakehouse(home, "up")
    try:
        fill(home, args.gb)
        before = counts(home)
        down_s = lakehouse(home, "down")
        snapshot = sum(p.stat().st_size for p in Path(home, "snapshot").glob("state-*.pickle"))
        up_s = lakehouse(home, "up")
        after = counts(home)
    finally:
        lakehouse(home, "down", "--discard")
    print(f"lake: {before[0]} object versions, {before[1] / 1024**3:.2f} GiB, {before[2]} ledger items")
    print(f"lakehouse down: {down_s:.1f} s (snapshot {snapshot / 1024**3:.2f} GiB)   lakehouse up: {up_s:.1f} s")
    print(
        f"after up: {after[0]} object versions, {after[1] / 1024**3:.2f} GiB, {after[2]} ledger items: "
        + ("all back" if after[0] >= before[0] and after[1] >= before[1] and after[2] == before[2] else "MISSING")
    )


if __name__ == "__main__":
    main()
