"""What-ifs beside the cost estimate: what the lake bucket's lifecycle rules save, and what partition pruning
would save the example queries. Both are models with their assumptions stated in the answer; written by hand
because no library prices S3 storage classes over time or Athena scans by partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from chalicelib.cost.prices import DAYS as DAYS_PER_MONTH
from chalicelib.cost.prices import crawl_dpu_hours, job_dpu_hours

HORIZON_DAYS = 365  # the lifecycle what-if looks at a lake after a year of steady inflow
HISTORY_DAYS = 365  # the pruning what-if: tables hold a year of data ...
WINDOW_DAYS = 30  # ... and a pruned query reads the last 30 days of it
DATE_TYPES = ("date", "timestamp")


def _applies(rule: Mapping[str, Any], prefix: str) -> bool:
    """Rules filtered by prefix only (a tag or size filter cannot be judged without the objects)."""
    if rule.get("Status", "Enabled") != "Enabled":
        return False
    filt = rule.get("Filter", {})
    if set(filt) - {"Prefix"}:
        return False
    return prefix.startswith(filt.get("Prefix", rule.get("Prefix", "")))


def _ages(rules: Iterable[Mapping[str, Any]], prefix: str, noncurrent: bool) -> list[tuple[int, str | None]]:
    """(day, storage class from that day; None: expired) for objects under `prefix`, STANDARD on day 0."""
    transitions_key, expiration_key, days_key = (
        ("NoncurrentVersionTransitions", "NoncurrentVersionExpiration", "NoncurrentDays")
        if noncurrent
        else ("Transitions", "Expiration", "Days")
    )
    steps: dict[int, str | None] = {0: "STANDARD"}
    expires = None
    for rule in (r for r in rules if _applies(r, prefix)):
        for transition in rule.get(transitions_key, []):
            if days_key in transition:
                steps[transition[days_key]] = transition["StorageClass"]
        days = rule.get(expiration_key, {}).get(days_key)
        if days is not None:
            expires = days if expires is None else min(expires, days)
    if expires is not None:
        steps = {d: c for d, c in steps.items() if d < expires} | {expires: None}
    return sorted(steps.items())


def _gb_months(steps: list[tuple[int, str | None]], gb_per_day: float) -> dict[str, float]:
    """Steady inflow for HORIZON_DAYS: the GB held in each class at the end (a day's inflow per day of age)."""
    held: dict[str, float] = {}
    for (start, cls), (end, _) in zip(steps, [*steps[1:], (HORIZON_DAYS, None)], strict=True):
        days = max(0, min(end, HORIZON_DAYS) - start)
        if cls is not None and days:
            held[cls] = held.get(cls, 0) + days * gb_per_day
    return held


def lifecycle_saving(
    usage: Any, rules: Sequence[Mapping[str, Any]] | None, zones: Any, p: Mapping[str, Any]
) -> dict[str, Any]:
    """The lake after a year: every accepted file is kept in archive/ (current versions) and its validated raw/
    version stays behind a delete marker (noncurrent). Without rules all of it stays STANDARD; with them it
    moves down the classes and expires as the rules say."""
    gb_per_day = usage.files_per_day * usage.avg_file_mb / 1024
    storage = p["s3_storage_gb_month"]
    per_transition = p["s3_lifecycle_transition_per_1000"]
    if not rules:
        return {
            "name": "lifecycle rules",
            "monthly_saving": 0.0,
            "detail": "no lifecycle definitions for the lake bucket (lakehouse lifecycle push)",
        }
    without = with_rules = 0.0
    classes: dict[str, dict[str, float]] = {}
    for prefix, noncurrent in ((zones.archive, False), (zones.raw, True)):
        steps = _ages(rules, prefix, noncurrent)
        held = _gb_months(steps, gb_per_day)
        classes[f"{prefix} ({'noncurrent' if noncurrent else 'current'} versions)"] = {
            k: round(v, 2) for k, v in held.items()
        }
        without += gb_per_day * HORIZON_DAYS * storage["STANDARD"]
        with_rules += sum(gb * storage[cls] for cls, gb in held.items())
        # every file is moved once per transition it lives to see: a request each, billed by the target class
        moves = [cls for day, cls in steps[1:] if cls is not None and day < HORIZON_DAYS]
        with_rules += sum(usage.files_per_day * DAYS_PER_MONTH * per_transition.get(cls, 0) / 1000 for cls in moves)
    return {
        "name": "lifecycle rules",
        "monthly_saving": round(without - with_rules, 2),
        "without_rules_monthly": round(without, 2),
        "with_rules_monthly": round(with_rules, 2),
        "gb_by_class_after_a_year": classes,
        "detail": (
            f"archive/ and raw/ old versions after {HORIZON_DAYS} days of {gb_per_day:.2f} GB a day, "
            "storage and transition requests, against keeping all of it in STANDARD"
        ),
    }


def tables_named(sql: str) -> list[str]:
    """The tables after FROM and JOIN: enough for the shipped examples, which name tables plainly (a regex,
    because sqlglot is not in the Lambda package)."""
    return sorted(set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", re.sub(r"--[^\n]*", "", sql), flags=re.IGNORECASE)))


def _date_partitioned(table: str, datasets: Mapping[str, Any]) -> bool:
    contract = datasets.get(table.removeprefix("processed_")) if table.startswith("processed_") else None
    if contract is None or contract.partition_column is None:
        return False
    column = next(c for c in contract.columns if c.name == contract.partition_column)
    return column.type in DATE_TYPES


def pruning_saving(usage: Any, datasets: Mapping[str, Any], queries_dir: Path, p: Mapping[str, Any]) -> dict[str, Any]:
    """The example queries restricted to the last WINDOW_DAYS of a table partitioned by a date: Athena reads only
    those partitions. The day's queries are taken to be the examples in equal shares, each reading
    `gb_scanned_per_query` split evenly over the tables it names."""
    examples = {path.stem: path.read_text() for path in sorted(queries_dir.glob("*.sql"))}
    if not examples:
        return {"name": "partition pruning", "monthly_saving": 0.0, "detail": "no example queries"}
    minimum_gb = p["athena_minimum_mb_per_query"] / 1024
    queries_each = usage.queries_per_day * DAYS_PER_MONTH / len(examples)
    saving, per_query = 0.0, {}
    for name, sql in examples.items():
        tables = tables_named(sql)
        share = usage.gb_scanned_per_query / max(1, len(tables))
        pruned_tables = [t for t in tables if _date_partitioned(t, datasets)]
        pruned = sum(share * (WINDOW_DAYS / HISTORY_DAYS if t in pruned_tables else 1) for t in tables)
        full_gb, pruned_gb = max(usage.gb_scanned_per_query, minimum_gb), max(pruned, minimum_gb)
        monthly = queries_each * (full_gb - pruned_gb) / 1024 * p["athena_per_tb_scanned"]
        saving += monthly
        per_query[name] = {
            "tables": tables,
            "date_partitioned": pruned_tables,
            "gb_scanned": round(full_gb, 4),
            "gb_scanned_pruned": round(pruned_gb, 4),
            "monthly_saving": round(monthly, 2),
        }
    return {
        "name": "partition pruning",
        "monthly_saving": round(saving, 2),
        "queries": per_query,
        "detail": (
            f"the example queries limited to the last {WINDOW_DAYS} of {HISTORY_DAYS} days (a WHERE on the "
            "partition column) read only those partitions of date-partitioned tables"
        ),
    }


def crawl_saving(usage: Any, p: Mapping[str, Any]) -> dict[str, Any]:
    """Crawling only on a raw layout change (the pipeline's way) against crawling every dataset of every run."""
    per_crawl = crawl_dpu_hours(usage.crawler_dpus, usage.crawler_minutes, p) * p["glue_crawler_dpu_hour"]
    every_run = usage.pipeline_runs_per_day * DAYS_PER_MONTH * usage.datasets_per_run * per_crawl
    on_change = usage.crawls_per_month * per_crawl
    return {
        "name": "crawl only on a layout change",
        "monthly_saving": round(every_run - on_change, 2),
        "every_run": round(every_run, 2),
        "on_layout_change": round(on_change, 2),
        "detail": (
            f"{usage.crawls_per_month:g} crawls a month when a dataset's raw layout changes, against a crawler per "
            f"dataset of each of {usage.pipeline_runs_per_day:g} runs a day (10 minutes of "
            f"{usage.crawler_dpus:g} DPUs at least, each)"
        ),
    }


def flex_saving(usage: Any, p: Mapping[str, Any]) -> dict[str, Any]:
    """The Glue job runs at the Flex execution class (spare capacity: a run may wait to start) against standard."""
    hours = job_dpu_hours(usage, p)
    standard, flex = hours * p["glue_dpu_hour"], hours * p["glue_flex_dpu_hour"]
    return {
        "name": "Glue Flex execution",
        "monthly_saving": round(standard - flex, 2),
        "standard": round(standard, 2),
        "flex": round(flex, 2),
        "detail": (
            f"{hours:,.1f} DPU-hours of job runs a month at {p['glue_flex_dpu_hour']} instead of {p['glue_dpu_hour']}"
            " a DPU-hour; Flex runs start when Glue has spare capacity, so only for runs that are not urgent"
        ),
    }
