"""What a Lambda needs at run time, built once per container from its environment.

The stage's environment (`.chalice/config.json`) names the stage and the lake bucket; everything else is
read from the configuration that provisioning published under the bucket's `config/` prefix, re-read at
most every `CONFIG_TTL_SECONDS` so a pushed contract takes effect without a redeploy.
"""

from __future__ import annotations

import os
import threading
import time

from .aws import ClientSettings, client
from .config import load_settings_from_s3
from .ingest import Ingestor
from .ledger import ledger_for

CONFIG_TTL_SECONDS = 60

_lock = threading.Lock()
_cached: tuple[float, Ingestor] | None = None


def ingestor() -> Ingestor:
    global _cached
    with _lock:
        if _cached is None or time.monotonic() - _cached[0] > CONFIG_TTL_SECONDS:
            bucket = os.environ["LAKEHOUSE_BUCKET"]
            prefix = os.environ.get("LAKEHOUSE_CONFIG_PREFIX", "config/")
            settings = load_settings_from_s3(client("s3"), bucket, prefix)
            stage = settings.stage(os.environ["LAKEHOUSE_STAGE"])
            clients = ClientSettings.for_stage(stage)
            ledger = ledger_for(stage)
            _cached = (
                time.monotonic(),
                Ingestor(settings, stage, client("s3", clients), client("sqs", clients), ledger),
            )
        return _cached[1]


def reset() -> None:
    """Forget the cached runtime (tests, and the local stage after re-provisioning)."""
    global _cached
    with _lock:
        _cached = None
