"""curated/ kept up to date incrementally: after any sequence of batches (new keys, updated keys, keys that move
partitions, late events), the merged tables equal a whole rebuild row for row. Real Delta tables (delta-rs) in a
directory, real SQL (DuckDB); hypothesis chooses the batches."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from lakehouse_etl import curated, delta, duck
from lakehouse_etl.lake import Lake
from lakehouse_etl.processed import Job
from lakehouse_etl.transform import table_schema

DAYS = [date(2025, 3, d) for d in (1, 2, 3)]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def ids(prefix: str, n: int) -> st.SearchStrategy[str]:
    return st.sampled_from([f"{prefix}{i}" for i in range(n)])  # few keys: batches update and move them


def minutes() -> st.SearchStrategy[datetime]:
    return st.integers(0, 6 * 60).map(lambda m: T0 + timedelta(minutes=m))  # gaps around the 30-minute session gap


money = st.integers(0, 5000).map(lambda c: Decimal(c).scaleb(-2))
ROWS: dict[str, Any] = {
    "orders": st.fixed_dictionaries(
        {
            "order_id": ids("O", 6),
            "customer_id": ids("C", 3),
            "order_ts": minutes(),
            "status": st.sampled_from(["placed", "shipped"]),
            "total_amount": money,
            "order_date": st.sampled_from(DAYS),
        }
    ),
    "order_items": st.fixed_dictionaries(  # an item's own order_date need not be its order's (yet)
        {
            "order_id": ids("O", 6),
            "product_id": ids("P", 3),
            "quantity": st.integers(1, 4),
            "unit_price": money,
            "discount": st.none() | money,
            "order_date": st.sampled_from(DAYS),
        }
    ),
    "products": st.fixed_dictionaries(
        {
            "product_id": ids("P", 3),
            "name": st.sampled_from(["A", "B"]),
            "department_id": st.integers(1, 2),
            "category": st.sampled_from(["books", "toys"]),
            "price": money,
        }
    ),
    "customers": st.fixed_dictionaries(
        {"customer_id": ids("C", 3), "country": st.sampled_from(["DE", "FR", None]), "signup_date": st.just(DAYS[0])}
    ),
    "clickstream": st.fixed_dictionaries(
        {
            "event_id": ids("E", 10),
            "customer_id": st.none() | ids("C", 3),
            "event_type": st.sampled_from(["view", "add_to_cart", "purchase"]),
            "product_id": st.none() | ids("P", 3),
            "event_ts": minutes(),
        }
    ),
    "reviews": st.fixed_dictionaries(
        {
            "review_id": ids("R", 4),
            "product_id": ids("P", 3),
            "customer_id": ids("C", 3),
            "rating": st.integers(1, 5),
            "review_ts": minutes(),
            "review_date": st.sampled_from(DAYS),
        }
    ),
}
batches = st.lists(
    st.fixed_dictionaries({d: st.lists(rows, max_size=5) for d, rows in ROWS.items()}), min_size=1, max_size=4
)


def as_table(contract: Any, rows: list[dict[str, Any]]) -> pa.Table:
    """A batch as its processed table holds it: typed, one row per key (the last delivered)."""
    by_key = {tuple(r[k] for k in contract.primary_key): r for r in rows}
    full = [
        {
            **dict.fromkeys(contract.column_names),
            **r,
            **({"event_date": r["event_ts"].date()} if "event_ts" in r else {}),
            "_source_file": "f",
        }
        for r in by_key.values()
    ]
    return pa.Table.from_pylist(full, table_schema(contract))


def rows_of(con: Any, sql: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def assert_equals_a_rebuild(job: Job) -> None:
    con = duck.session()
    for name in job.settings.datasets:
        table = delta.open_table(job.lake.processed(name), {})
        con.register(
            name, table.to_pyarrow_dataset() if table else table_schema(job.settings.datasets[name]).empty_table()
        )
    for name, sql in curated.CURATED_SQL.items():
        con.register(f"merged_{name}", delta.open_table(job.lake.curated(name), {}).to_pyarrow_dataset())
        assert rows_of(con, f"SELECT * FROM merged_{name}") == rows_of(con, sql), name
    con.close()


def apply(job: Job, number: int, batch: dict[str, list[dict[str, Any]]]) -> None:
    for dataset, rows in batch.items():
        contract = job.settings.datasets[dataset]
        uri = job.lake.processed(dataset)
        delta.merge_batch(uri, contract, as_table(contract, rows), app_id=uri, version=number, storage_options={})


@pytest.fixture(scope="module")
def shipped():
    from conftest import CONFIG

    from chalicelib.config import load_settings

    return load_settings(CONFIG)


@run_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=batches)
def test_incremental_curated_tables_equal_a_rebuild_after_any_batches(shipped, sequence):
    with tempfile.TemporaryDirectory() as root:
        job = Job(shipped, shipped.stage("local"), None, None, Lake(root, shipped))
        for number, batch in enumerate(sequence, start=1):
            apply(job, number, batch)
            reports = curated.run(job)
            assert_equals_a_rebuild(job)
            if number > 1:  # after the first build, a table is merged (or unchanged), never rebuilt
                assert {r.mode for r in reports} <= {"merged", "unchanged"}, reports


def test_a_moved_order_updates_its_old_and_new_day_and_a_rerun_changes_nothing(shipped, tmp_path):
    job = Job(shipped, shipped.stage("local"), None, None, Lake(str(tmp_path), shipped))
    order = {"order_id": "O1", "customer_id": "C1", "order_ts": T0, "status": "placed", "total_amount": Decimal(5)}
    item = {"order_id": "O1", "product_id": "P1", "quantity": 2, "unit_price": Decimal(3), "order_date": DAYS[0]}
    apply(job, 1, {"orders": [{**order, "order_date": DAYS[0]}], "order_items": [item]})
    first = {r.table: r for r in curated.run(job)}
    assert (
        first["daily_sales_by_category"].mode == "rebuilt"
        and "does not exist" in first["daily_sales_by_category"].reason
    )
    apply(job, 2, {"orders": [{**order, "order_date": DAYS[1]}]})  # the same order, now on the 2nd

    second = {r.table: r for r in curated.run(job)}
    assert (second["daily_sales_by_category"].mode, second["daily_sales_by_category"].groups) == ("merged", 2)
    assert second["clickstream_sessions"].mode == "unchanged"
    assert_equals_a_rebuild(job)
    sales = delta.read(job.lake.curated("daily_sales_by_category"), {}).to_pylist()
    assert [(r["order_date"], r["units"]) for r in sales] == [(DAYS[1], 2)]  # moved, not counted twice

    versions = {r.table: r.delta_version for r in second.values()}
    again = curated.run(job)  # nothing new: no commit anywhere
    assert {r.table: (r.mode, r.delta_version) for r in again} == {t: ("unchanged", v) for t, v in versions.items()}
    rebuilt = curated.run(job, rebuild=True)  # lakehouse curated rebuild
    assert {r.mode for r in rebuilt} == {"rebuilt"} and "asked for" in rebuilt[0].reason
    assert_equals_a_rebuild(job)


def test_a_change_feed_that_cannot_be_read_rebuilds_the_table_whole(shipped, tmp_path, monkeypatch):
    job = Job(shipped, shipped.stage("local"), None, None, Lake(str(tmp_path), shipped))
    event = {"event_id": "E1", "customer_id": "C1", "event_type": "view", "product_id": "P1", "event_ts": T0}
    apply(job, 1, {"clickstream": [event]})
    curated.run(job)
    apply(job, 2, {"clickstream": [{**event, "event_id": "E2"}]})
    from deltalake import DeltaTable

    def expired(self, **kwargs):  # as after a VACUUM removed the change files
        raise OSError("No such file: _change_data/cdc-00000.parquet")

    monkeypatch.setattr(DeltaTable, "load_cdf", expired)
    reports = {r.table: r for r in curated.run(job)}
    assert reports["clickstream_sessions"].mode == "rebuilt"
    assert "cannot be read (OSError: No such file" in reports["clickstream_sessions"].reason
    monkeypatch.undo()
    assert_equals_a_rebuild(job)
    assert reports["clickstream_sessions"].rows == 1  # both events in one session
