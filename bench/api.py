"""The HTTP API's latency through the Chalice test client, and the cold `import app`, in one run.

python bench/api.py [--requests 1000] [--imports 10]

GET /cost and GET /status, each --requests times, on a provisioned local stage in in-process moto with a
ledger holding 500 files, 20 runs and 10 quality results per dataset; the baseline is GET / (the static page)
through the same client in the same process. Twice: with the ledger in moto's DynamoDB (whose queries scan
every item in Python: it dominates), and with the same items in the in-memory ledger (what the handlers
themselves cost). The AWS calls a request makes are counted: on AWS each is a few milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
IMPORT_PROBE = "import time; t = time.perf_counter(); import app; print((time.perf_counter() - t) * 1000)"


def cold_imports(runs: int) -> list[float]:
    env = {"PATH": "/usr/bin:/bin", "LAKEHOUSE_API_AUTH": "none"}
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]


def fill(settings, stage, ledger) -> None:
    from chalicelib.ledger import FileRecord, Status

    now = datetime.now(UTC)
    for i in range(500):
        name = f"raw/orders/f{i:04}.csv"
        record = FileRecord(f"{stage.bucket}/{name}#v1", stage.bucket, name, "v1", "orders")
        claimed = ledger.claim(record, now=now - timedelta(minutes=3 * i)).record
        ledger.finish(claimed, Status.REJECTED if i % 10 == 0 else Status.VALID)
    for _ in range(20):
        run = ledger.begin_run()
        ledger.end_run(run.name, "SUCCEEDED")
        for dataset in settings.datasets:
            checks = [{"rule": f"rule{j}", "passed": j != 0} for j in range(4)]
            result = {"run": run.name, "status": "WARN", "rows_loaded": 9, "checks": checks}
            ledger.save_quality(run.name, dataset, result)


CALLS: list[str] = []


def count_calls() -> None:
    """Count every AWS API call this process makes."""
    from botocore.client import BaseClient

    make = BaseClient._make_api_call

    def counted(self, operation, params):
        CALLS.append(operation)
        return make(self, operation, params)

    BaseClient._make_api_call = counted


def timed(client, path: str, n: int) -> list[float]:
    CALLS.clear()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        response = client.http.get(path)
        out.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.body
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--imports", type=int, default=10)
    args = parser.parse_args()
    imports = cold_imports(args.imports)

    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.update({"LAKEHOUSE_API_AUTH": "none"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import runtime
    from chalicelib.aws import Clients
    from chalicelib.config import config_files, load_settings
    from chalicelib.ledger import DynamoDBLedger, InMemoryLedger
    from deploy.provision import provision, upload_config

    lines = []
    with mock_aws():
        settings = load_settings(ROOT / "config")
        stage = settings.stage("local")
        clients = Clients.for_stage(stage)
        provision(settings, stage, clients, config_files(ROOT / "config"), progress=lambda _: None)
        lake = (ROOT / "config" / "lifecycle" / "lake.toml").read_text()
        upload_config(clients.s3, stage.bucket, "config/lifecycle/", {"lake.toml": lake})
        memory = InMemoryLedger()
        for ledger in (DynamoDBLedger(clients.dynamodb, stage.ledger_table), memory):
            fill(settings, stage, ledger)
        count_calls()
        import app

        with Client(app.app, stage_name="local", project_dir=str(ROOT)) as client:
            for ledger_name in ("moto DynamoDB", "in-memory"):
                if ledger_name == "in-memory":  # the same runtime, its ledger swapped
                    rt = runtime.current()
                    runtime._cache["runtime"] = (
                        time.monotonic() + 3600,
                        runtime.Runtime(rt.settings, rt.stage, memory),
                    )
                for path in ("/", "/cost", "/status"):  # warm: the first request reads the configuration
                    timed(client, path, 5)
                baseline = timed(client, "/", args.requests)
                b50 = statistics.median(baseline)
                lines.append(f"ledger in {ledger_name}:")
                lines.append(f"  GET /        (baseline) p50 {b50:8.2f} ms  p99 {p(baseline, 99):8.2f} ms")
                for path in ("/cost", "/status"):
                    values = timed(client, path, args.requests)
                    calls = len(CALLS) / args.requests
                    p50 = statistics.median(values)
                    lines.append(
                        f"  GET {path:8}           p50 {p50:8.2f} ms  p99 {p(values, 99):8.2f} ms"
                        f"  ({p50 / b50:.0f}x the baseline's p50; {calls:.1f} AWS calls a request)"
                    )
            body = json.loads(client.http.get("/status").body)
    print(
        f"cold `import app` ({args.imports} fresh interpreters): median {statistics.median(imports):.0f} ms, "
        f"max {max(imports):.0f} ms"
    )
    print(
        f"{args.requests} requests each through the Chalice test client; /status sees "
        f"{sum(body['files_last_24h'].values())} files in the last 24 h and {len(body['runs'])} runs"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
