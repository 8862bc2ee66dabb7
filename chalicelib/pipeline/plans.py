"""A saved plan brought up to today's shape before its execution is started again.

The batcher resumes a run that was planned but not started (`Pipeline.tick`), and its plan was kept in the ledger
in the shape of the code that planned it. The state machine reads every field of today's plan by path
(`$.mode`, `$.master_merge.worker_type`, each batch's `$.worker_type` ...), and a path that selects nothing is
`States.Runtime`, which no Catch takes: the run would end with no HandleFailure and no alert (Step Functions
developer guide, "Error handling": States.Runtime "cannot be caught"). So the fields an older planner did not write
get the values that planner meant: every dataset its own job on one node, then the master merge (plans before
sizing), no engine or crawl reasons recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from chalicelib.ledger.records import RunPlan
from chalicelib.pipeline.engines import single_node_worker_type

SINGLE_NODE_WORKERS = 2  # Glue's least: the ETL runs on the driver (engines.choose)


def resumed(plan: Mapping[str, Any], run_bytes: int) -> RunPlan:
    """`plan` with every field today's state machine reads: those it lacks are filled in, those it has kept.
    Workers are sized from the whole run's bytes (no batch is bigger), as the planner sizes the master merge."""
    worker_type = single_node_worker_type(run_bytes)
    sized = {"worker_type": worker_type, "workers": SINGLE_NODE_WORKERS}
    levels = [[{**sized, **batch} for batch in level] for level in plan.get("levels", [])]
    out: dict[str, Any] = {
        "crawlers": [],
        "crawl_reasons": {},  # read when nothing is crawled (the CrawlSkipped state)
        "layouts": {},
        "engines": {},
        "mode": "per_dataset",  # what every run was before runs were sized
        "sizing": "planned before runs were sized: a job per dataset",
        **plan,
        "levels": levels,
    }
    if out["mode"] == "per_dataset" and "master_merge" not in out:
        out["master_merge"] = {**sized}
    return cast(RunPlan, out)
