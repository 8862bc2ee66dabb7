"""Which engine runs a dataset's batch, and how big a Glue job it gets (docs/etl.md, "The Spark engine").

The batcher asks for each dataset batch of a run (the run's plan records the answer and why) and the cost estimate
prices both engines with the same figures, so what `lakehouse cost` says is what the pipeline does. The rates are
measured here on 2 cores by the benches named below; what a Glue worker does per second only an AWS run can say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.config.model import PipelineSettings, Settings

from chalicelib.config.model import WORKER_LIMITS, WORKER_TYPE  # beside spark_max_workers, which they bound

SINGLE_NODE_MIB_PER_SECOND = 20.0  # bench/etl.py: 323 MiB of CSV read, typed and merged in 14-16 s on one node
SINGLE_NODE_G1X_BYTES = 10 * 1024**3  # past this a batch on one node wants a G.2X's disk (docs/etl.md, "Memory")
DPUS = {"G.1X": 1, "G.2X": 2}
MINIMUM_SECONDS = 60  # Glue bills a job run a minute at least (Glue 2.0 and later)
# bench/engines.py: Spark's tasks read 323 MiB of CSV in 8 files and staged it as Parquet in 4.0 s on 2 cores ...
STAGING_MIB_PER_SECOND = 80.0
# ... and Spark (Sail) took twice one node's time to type and merge the same batch on the same cores
SPARK_SHARE_OF_ONE_NODE = 0.5


@dataclass(frozen=True)
class EngineChoice:
    """One dataset batch's engine: on Spark or not, why (for the plan), and the Glue workers its job is started
    with (on Spark the most it may hold: with auto scaling, Glue bills the workers it holds)."""

    spark: bool
    why: str
    worker_type: str
    workers: int


def choose(settings: Settings, dataset: str, size: int, forced: str | None = None) -> EngineChoice:
    """The engine of a dataset batch of `size` bytes: the run says which (`lakehouse run --engine`), its contract
    does (`engine`), or its size passes `[pipeline] spark_bytes`."""
    pipeline = settings.pipeline
    choice = forced or settings.datasets[dataset].engine
    if choice != "auto":
        why = "lakehouse run --engine" if forced else f"its contract's engine = {choice!r}"
        spark, why = choice == "spark", f"{choice} ({why})"
    elif spark_by_size(size, pipeline):
        spark, why = True, f"spark ({size:,} bytes >= spark_bytes {pipeline.spark_bytes:,})"
    else:
        spark, why = False, f"single ({size:,} bytes < spark_bytes {pipeline.spark_bytes:,})"
    if not spark:  # the ETL runs on the driver: two workers, Glue's least, bigger past one G.1X's disk
        kind = single_node_worker_type(size)
        return EngineChoice(False, why if kind == WORKER_TYPE else f"{why}, on {kind} workers", kind, 2)
    workers = spark_workers(size, pipeline)
    return EngineChoice(True, f"{why}, up to {workers} {WORKER_TYPE} workers", WORKER_TYPE, workers)


def spark_by_size(size: float, pipeline: PipelineSettings) -> bool:
    """The automatic rule: a batch of `[pipeline] spark_bytes` or more runs on Spark."""
    return size >= pipeline.spark_bytes


def single_node_worker_type(size: float) -> str:
    """The worker a batch on one node needs: a G.2X past one G.1X's disk (docs/etl.md, "Memory")."""
    return WORKER_TYPE if size <= SINGLE_NODE_G1X_BYTES else "G.2X"


def spark_workers(size: int, pipeline: PipelineSettings) -> int:
    """A Spark job's workers for `size` bytes: the driver and an executor per `[pipeline] spark_worker_bytes`
    (what one node does in under two minutes; an executor, at half that rate, in about four), at most
    `spark_max_workers`."""
    low, _ = WORKER_LIMITS[WORKER_TYPE]
    return max(low, min(pipeline.spark_max_workers, 1 + math.ceil(size / pipeline.spark_worker_bytes)))


@dataclass(frozen=True)
class BatchRun:
    """What a batch of `size` bytes costs on one engine, estimated: its job's workers, run time and DPU-hours."""

    engine: str
    size: float
    worker_type: str
    workers: int
    seconds: float
    dpu_hours: float


def single_node_run(size: float) -> BatchRun:
    """A batch on one node: the job's two workers (the ETL runs on the driver alone) at the measured rate, a minute
    billed at least; past one G.1X's disk, a G.2X (docs/etl.md, "Memory")."""
    kind = single_node_worker_type(size)
    seconds = size / 2**20 / SINGLE_NODE_MIB_PER_SECOND
    return BatchRun("single", size, kind, 2, seconds, 2 * DPUS[kind] * max(seconds, MINIMUM_SECONDS) / 3600)


def spark_run(size: float, pipeline: PipelineSettings) -> BatchRun:
    """A batch on Spark: the executors (workers - 1) read and stage their share of the files, then type and merge it
    at half one node's rate (as measured); every worker billed while the job runs, a minute at least (an upper
    bound: auto scaling releases executors that have nothing left to do)."""
    workers = spark_workers(int(size), pipeline)
    mib, executors = size / 2**20, workers - 1
    merging = SINGLE_NODE_MIB_PER_SECOND * SPARK_SHARE_OF_ONE_NODE * executors
    seconds = mib / (STAGING_MIB_PER_SECOND * executors) + mib / merging
    billed = workers * DPUS[WORKER_TYPE] * max(seconds, MINIMUM_SECONDS) / 3600
    return BatchRun("spark", size, WORKER_TYPE, workers, seconds, billed)
