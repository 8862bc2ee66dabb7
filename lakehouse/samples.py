"""A small, deterministic set of files for the ingest demo and tests: valid files, duplicates, and the bad
inputs the validator must reject, each with the outcome it must get."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: Path
    dataset: str
    status: str  # the ledger status it must reach
    code: str | None = None  # the reason code, where one is expected


ORDERS_HEADER = "order_id,customer_id,order_ts,status,total_amount,currency,order_date"


def _orders(rng: random.Random, n: int, start: int = 0) -> list[str]:
    rows = []
    for i in range(start, start + n):
        day = 1 + i % 28
        rows.append(
            f"O{i:07d},C{rng.randint(1, 5000):05d},2025-03-{day:02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:00Z,{rng.choice(['placed', 'shipped', 'delivered'])},"
            f"{rng.uniform(5, 900):.2f},EUR,2025-03-{day:02d}"
        )
    return rows


def _csv(header: str, rows: list[str], newline: str = "\n") -> bytes:
    return (newline.join([header, *rows]) + newline).encode()


def write_ingest_samples(folder: Path, seed: int = 7, run: int = 0) -> list[Sample]:
    """Write the sample files into `folder` and return them in drop order. Another `run` writes the same files
    with other contents (the same keys), so they are new to a lake that holds an earlier run's."""
    rng = random.Random(seed + 1000 * run)
    folder.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []

    def add(name: str, data: bytes, dataset: str, status: str, code: str | None = None) -> None:
        path = folder / name
        path.write_bytes(data)
        samples.append(Sample(path, dataset, status, code))

    orders = _csv(ORDERS_HEADER, _orders(rng, 500))
    add("orders_2025-03-01.csv", orders, "orders", "VALID")
    add("orders_2025-03-02.csv", _csv(ORDERS_HEADER, _orders(rng, 300, start=500)), "orders", "VALID")
    items = ["order_id,product_id,quantity,unit_price,discount,order_date"] + [
        f"O{i:07d},P{rng.randint(1, 200):04d},{rng.randint(1, 4)},{rng.uniform(2, 300):.2f},,2025-03-{1 + i % 28:02d}"
        for i in range(800)
    ]
    add("order_items_2025-03-01.csv", ("\n".join(items) + "\n").encode(), "order_items", "VALID")
    products = [
        json.dumps(
            {
                "product_id": f"P{i:04d}",
                "name": f"Product {i}",
                "department_id": 1 + i % 12,
                "category": rng.choice(["books", "garden", "toys", "audio"]),
                "price": round(rng.uniform(2, 300), 2),
                "updated_at": "2025-03-01T00:00:00Z",
            }
        )
        for i in range(1, 201)
    ]
    add("products.jsonl", ("\n".join(products) + "\n").encode(), "products", "VALID")
    customers = ["customer_id,email,full_name,country,signup_date"] + [
        f'C{i:05d},c{i}@example.com,"Doe, Jane {i}",{rng.choice(["DE", "FR", "US", "JP"])},2024-0{1 + i % 9}-15'
        for i in range(1, 301)
    ]
    add("customers.csv.gz", gzip.compress(("\n".join(customers) + "\n").encode(), mtime=0), "customers", "VALID")
    clicks = [
        json.dumps(
            {
                "event_id": f"E{i:06d}",
                "customer_id": f"C{rng.randint(1, 300):05d}",
                "event_type": rng.choice(["view", "add_to_cart", "purchase"]),
                "product_id": f"P{rng.randint(1, 200):04d}",
                "event_ts": f"2025-03-01T10:{i % 60:02d}:00Z",
                "event_date": "2025-03-01",
            }
        )
        for i in range(1000)
    ]
    add("clickstream_2025-03-01.jsonl", ("\n".join(clicks) + "\n").encode(), "clickstream", "VALID")
    review_header = "review_id,product_id,customer_id,rating,review_text,review_ts,review_date"
    salt = f" (run {run})" if run else ""
    add(
        "reviews_bom_crlf.csv",
        b"\xef\xbb\xbf"
        + _csv(
            review_header,
            [
                f'R1,P0001,C00001,5,"Great, really great{salt}",2025-03-01T08:00:00Z,2025-03-01',
                'R2,P0002,C00002,2,"Broke after\na week",2025-03-01T09:00:00Z,2025-03-01',
            ],
            newline="\r\n",
        ),
        "reviews",
        "VALID",
    )
    add("orders spaced ünïcode.csv", _csv(ORDERS_HEADER, _orders(rng, 20, start=900)), "orders", "VALID")

    # The same content again under other names: recognised from the ETag (HEAD only) or the stream's MD5.
    add("orders_2025-03-01_resent.csv", orders, "orders", "DUPLICATE", "DUPLICATE_CONTENT")
    add(
        "orders_copy.csv.gz",
        gzip.compress(_csv(ORDERS_HEADER, _orders(random.Random(1 + run), 5)), mtime=0),
        "orders",
        "VALID",
    )
    add(
        "orders_copy_again.csv.gz",
        gzip.compress(_csv(ORDERS_HEADER, _orders(random.Random(1 + run), 5)), mtime=0),
        "orders",
        "DUPLICATE",
        "DUPLICATE_CONTENT",
    )

    # Bad inputs: each must be rejected with its reason and copied to rejected/.
    header = ORDERS_HEADER.encode() + b"\n"
    row = _orders(rng, 1, start=990)[0].encode() + b"\n"
    add("empty.csv", b"", "orders", "REJECTED", "EMPTY_FILE")
    add("header_only.csv", header, "orders", "REJECTED", "NO_DATA_ROWS")
    add("binary.csv", bytes(range(256)) * 8, "orders", "REJECTED", "BINARY_CONTENT")
    add(
        "latin1.csv",
        header + row + "O0000999,C00001,2025-03-01T00:00:00Z,réglé,1.00,EUR,2025-03-01\n".encode("latin-1"),
        "orders",
        "REJECTED",
        "INVALID_UTF8",
    )
    add("semicolons.csv", header.replace(b",", b";") + row.replace(b",", b";"), "orders", "REJECTED", "WRONG_DELIMITER")
    add("missing_columns.csv", b"order_id,customer_id\nO1,C1\n", "orders", "REJECTED", "MISSING_COLUMNS")
    add(
        "extra_columns.csv",
        header.rstrip() + b",coupon\n" + row.rstrip() + b",SPRING\n",
        "orders",
        "REJECTED",
        "UNKNOWN_COLUMNS",
    )
    add("ragged.csv", header + row + b"O0000998,C00001,2025-03-01\n" + row, "orders", "REJECTED", "RAGGED_ROW")
    add(
        "broken_line.jsonl",
        ("\n".join(clicks[:3]) + '\n{"event_id": "E9", "event_type": \n').encode(),
        "clickstream",
        "REJECTED",
        "BAD_JSON",
    )
    add("truncated.csv.gz", gzip.compress(orders, mtime=0)[:-200], "orders", "REJECTED", "TRUNCATED_GZIP")
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    add(
        "bomb.csv.gz",
        bomb.compress(header) + b"".join(bomb.compress(row * 20000) for _ in range(30)) + bomb.flush(),
        "orders",
        "REJECTED",
        "DECOMPRESSION_BOMB",
    )
    add("inventory.csv", b"sku,qty\nA,1\n", "inventory", "REJECTED", "UNKNOWN_DATASET")
    return samples
