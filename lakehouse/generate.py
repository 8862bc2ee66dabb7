"""`lakehouse generate`: a realistic, seeded e-commerce sample set with planted anomalies, and a manifest
of exactly what was planted, so tests can assert exact counts.

Every row is either clean or carries exactly one anomaly. Clean rows are messy the way real exports are
(currency symbols, thousands separators, timestamps in several formats and zones): the ETL must accept them.
Anomalies and the reason code the ETL must give:
  null_required -> REQUIRED, bad_timestamp -> TYPE_ERROR, negative_amount -> OUT_OF_RANGE,
  orphan -> ORPHAN (order items of an order that does not exist); duplicate -> an exact copy of a clean row,
  dropped by de-duplication, not rejected.
Some anomalies pass the ETL and are caught by the contracts' quality rules instead (the rule they fail):
  bad_status -> accepted_values(status), bad_email -> pattern(email), unknown_product -> references(product_id).
The data ends at `end` (default: today, UTC), so freshness rules pass on a freshly generated set.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

Row = dict[str, Any]
Spoiler = Callable[[Row], Row]  # turns a clean row into one with an anomaly

REASON = {
    "null_required": "REQUIRED",
    "bad_timestamp": "TYPE_ERROR",
    "negative_amount": "OUT_OF_RANGE",
    "orphan": "ORPHAN",
}
RULE = {
    "bad_status": "accepted_values(status)",
    "bad_email": "pattern(email)",
    "unknown_product": "references(product_id)",
}
CATEGORIES = ("books", "garden", "toys", "audio", "kitchen", "sports")


@dataclass
class Planted:
    """What one dataset file holds."""

    file: str
    rows_written: int = 0
    clean_rows: int = 0  # rows the ETL keeps: clean ones and those with an anomaly only a quality rule catches
    duplicates: int = 0
    anomalies: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows_written": self.rows_written,
            "clean_rows": self.clean_rows,
            "duplicates": self.duplicates,
            "anomalies": dict(self.anomalies),
            "rejected_by_reason": {REASON[k]: n for k, n in self.anomalies.items() if k in REASON},
            "rule_failures": {RULE[k]: n for k, n in self.anomalies.items() if k in RULE},
        }


def _timestamp(rng: random.Random, moment: datetime) -> str:
    """The same instant written the ways real exports write it."""
    style = rng.randrange(5)
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return (moment + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    if style == 2:
        return (moment - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S-0500")
    if style == 3:
        return moment.strftime("%Y-%m-%d %H:%M:%S")  # no zone: UTC
    return str(int(moment.timestamp()))  # epoch seconds


def _amount(rng: random.Random, value: float) -> str:
    style = rng.randrange(4)
    if style == 0 and value >= 1000:
        return f"{value:,.2f}"
    if style == 1:
        return f"€{value:.2f}"
    if style == 2:
        return f"$ {value:,.2f}"
    return f"{value:.2f}"


class _Writer:
    """Collects rows, plants anomalies at the chosen rate, writes the file and its manifest entry."""

    def __init__(self, rng: random.Random, rate: float, kinds: tuple[str, ...], name: str) -> None:
        self.rng, self.rate, self.kinds = rng, rate, kinds
        self.rows: list[Row] = []
        self.planted = Planted(name)

    def add(self, row: Row, spoil: dict[str, Spoiler] | None = None) -> bool:
        """Add a clean row, or (at the rate) a spoiled one; `spoil[kind](row)` spoils it. True if the ETL keeps
        the row (clean, or spoiled in a way only a quality rule catches)."""
        if spoil and self.rng.random() < self.rate:
            kind = self.rng.choice([k for k in self.kinds if k in spoil])
            self.rows.append(spoil[kind](dict(row)))
            self.planted.anomalies[kind] += 1
            self.planted.clean_rows += kind in RULE
            return kind in RULE
        self.rows.append(row)
        self.planted.clean_rows += 1
        if self.rng.random() < self.rate / 2:
            self.rows.append(dict(row))
            self.planted.duplicates += 1
        return True

    def write(self, folder: Path, columns: list[str]) -> Planted:
        path = folder / self.planted.file
        self.planted.rows_written = len(self.rows)
        if path.suffix == ".jsonl":
            with path.open("w") as f:
                for row in self.rows:
                    f.write(json.dumps({k: row[k] for k in columns if row.get(k) is not None}) + "\n")
        else:
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(self.rows)
        return self.planted


def generate(
    folder: Path,
    *,
    orders: int = 2000,
    anomaly_rate: float = 0.02,
    seed: int = 7,
    days: int = 30,
    end: date | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Write the six datasets into `folder`; returns (and writes as manifest.json) what was planted. The orders
    fall in the `days` days before `end` (default today, UTC). Every id starts with `prefix` (`lakehouse smoke`
    keeps its rows apart from a lake's own with it)."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC).date()
    start = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(days=days)
    folder.mkdir(parents=True, exist_ok=True)
    n_customers, n_products = max(10, orders // 4), max(10, min(500, orders // 10))

    def blank(col: str) -> Spoiler:
        return lambda r: {**r, col: ""}

    manifest: dict[str, Any] = {}

    customers = _Writer(rng, anomaly_rate, ("null_required", "bad_email"), "customers.csv")
    for i in range(1, n_customers + 1):
        customers.add(
            {
                "customer_id": f"{prefix}C{i:06d}",
                "email": f"c{i}@example.com",
                "full_name": f"Customer, No. {i}",
                "country": rng.choice(["DE", "FR", "US", "JP", "BR"]),
                "signup_date": (start - timedelta(days=rng.randrange(400))).date().isoformat(),
            },
            {
                "null_required": blank("signup_date"),
                "bad_email": lambda r: {**r, "email": r["email"].replace("@", " at ")},
            },
        )
    manifest["customers"] = customers.write(folder, ["customer_id", "email", "full_name", "country", "signup_date"])

    products = _Writer(rng, anomaly_rate, ("null_required", "negative_amount"), "products.jsonl")
    prices = {}
    for i in range(1, n_products + 1):
        pid, price = f"{prefix}P{i:05d}", round(rng.uniform(2, 400), 2)
        kept = products.add(
            {
                "product_id": pid,
                "name": f"Product {i}",
                "department_id": 1 + i % 12,
                "category": CATEGORIES[i % len(CATEGORIES)],
                "price": price,
                "updated_at": _timestamp(rng, start),
            },
            {"null_required": lambda r: {**r, "name": None}, "negative_amount": lambda r: {**r, "price": -r["price"]}},
        )
        if kept:  # orders, events and reviews name only products that reach the table
            prices[pid] = price
    manifest["products"] = products.write(
        folder, ["product_id", "name", "department_id", "category", "price", "updated_at"]
    )

    order_rows = _Writer(
        rng, anomaly_rate, ("null_required", "bad_timestamp", "negative_amount", "bad_status"), "orders.csv"
    )
    items = _Writer(rng, anomaly_rate, ("null_required", "negative_amount", "orphan"), "order_items.csv")
    clicks = _Writer(rng, anomaly_rate, ("null_required", "bad_timestamp"), "clickstream.jsonl")
    reviews = _Writer(rng, anomaly_rate, ("null_required", "unknown_product"), "reviews.csv")
    event_id = review_id = 0
    for i in range(1, orders + 1):
        order_id, customer = f"{prefix}O{i:08d}", f"{prefix}C{rng.randint(1, n_customers):06d}"
        moment = start + timedelta(days=rng.randrange(days), seconds=rng.randrange(86400))
        lines = [(pid, rng.randint(1, 4)) for pid in rng.sample(sorted(prices), rng.randint(1, 4))]
        total = sum(prices[p] * q for p, q in lines)
        clean = order_rows.add(
            {
                "order_id": order_id,
                "customer_id": customer,
                "order_ts": _timestamp(rng, moment),
                "status": rng.choice(["placed", "shipped", "delivered"]),
                "total_amount": _amount(rng, total),
                "currency": "EUR",
                "order_date": moment.date().isoformat(),
            },
            {
                "null_required": blank("customer_id"),
                "bad_timestamp": lambda r: {**r, "order_ts": "31/02/2025 25:61"},
                "negative_amount": lambda r: {**r, "total_amount": f"-{r['total_amount'].lstrip('€$ ')}"},
                "bad_status": lambda r: {**r, "status": "lost in transit"},
            },
        )
        if clean:  # items of a rejected order would be orphans: only clean orders get items
            for pid, qty in lines:
                items.add(
                    {
                        "order_id": order_id,
                        "product_id": pid,
                        "quantity": qty,
                        "unit_price": _amount(rng, prices[pid]),
                        "discount": "",
                        "order_date": moment.date().isoformat(),
                    },
                    {
                        "null_required": blank("product_id"),
                        "negative_amount": lambda r: {**r, "unit_price": "-1.00"},
                        "orphan": lambda r: {**r, "order_id": r["order_id"] + "X"},
                    },
                )
        for step, kind in enumerate(("view", "view", "add_to_cart", "purchase")[: rng.randint(1, 4)]):
            event_id += 1
            at = moment - timedelta(minutes=20 * (4 - step))
            clicks.add(
                {
                    "event_id": f"{prefix}E{event_id:09d}",
                    "customer_id": customer,
                    "session_id": None,
                    "event_type": kind,
                    "product_id": lines[0][0],
                    "event_ts": _timestamp(rng, at),
                    "event_date": at.date().isoformat(),
                },
                {
                    "null_required": lambda r: {**r, "event_type": None},
                    "bad_timestamp": lambda r: {**r, "event_ts": "yesterday at noon"},
                },
            )
        if rng.random() < 0.2:
            review_id += 1
            at = moment + timedelta(days=3)
            reviews.add(
                {
                    "review_id": f"{prefix}R{review_id:08d}",
                    "product_id": lines[0][0],
                    "customer_id": customer,
                    "rating": rng.randint(1, 5),
                    "review_text": rng.choice(["Great", "Meh", "Broke, sadly", ""]),
                    "review_ts": _timestamp(rng, at),
                    "review_date": at.date().isoformat(),
                },
                {"null_required": blank("rating"), "unknown_product": lambda r: {**r, "product_id": "P99999"}},
            )
    manifest["orders"] = order_rows.write(
        folder, ["order_id", "customer_id", "order_ts", "status", "total_amount", "currency", "order_date"]
    )
    manifest["order_items"] = items.write(
        folder, ["order_id", "product_id", "quantity", "unit_price", "discount", "order_date"]
    )
    manifest["clickstream"] = clicks.write(
        folder, ["event_id", "customer_id", "session_id", "event_type", "product_id", "event_ts", "event_date"]
    )
    manifest["reviews"] = reviews.write(
        folder, ["review_id", "product_id", "customer_id", "rating", "review_text", "review_ts", "review_date"]
    )
    result = {
        "seed": seed,
        "orders": orders,
        "end": end.isoformat(),
        "anomaly_rate": anomaly_rate,
        "datasets": {k: v.as_dict() for k, v in manifest.items()},
    }
    (folder / "manifest.json").write_text(json.dumps(result, indent=2))
    return result
