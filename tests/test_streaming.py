"""Bounded memory: a batch is streamed from its files, cleaned in DuckDB within a memory limit (spilling past it)
and written a partition at a time, with the same result as with memory to spare."""

import codecs
import gzip
import io
import json
from datetime import date

import pyarrow as pa
import pytest
from lakehouse_etl import delta, sources, transform
from lakehouse_etl.duck import Rows

from chalicelib.errors import TableError
from chalicelib.ledger import FileRecord


class Files:
    """The one S3 call the reader makes, over in-memory objects."""

    def __init__(self, objects):
        self.objects = objects

    def get_object(self, Bucket, Key, **kwargs):
        return {"Body": io.BytesIO(self.objects[Key])}


def orders_csv(ids, day="2025-03-01", header=True):
    lines = ["order_id,customer_id,order_ts,status,total_amount,currency,order_date"] if header else []
    lines += [f"{i},C1,{day}T10:00:00Z,placed,{n}.50,EUR,{day}" for n, i in enumerate(ids)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def contract(settings):
    return settings.datasets["orders"]


def test_files_are_read_block_by_block_with_lineage_across_blocks(contract, tmp_path, monkeypatch):
    """Small blocks force many per file: `_row` still counts 1..n in each file, `_seq` is the file's place."""
    monkeypatch.setattr(sources, "BLOCK_BYTES", 256)
    first, second = orders_csv([f"a{i}" for i in range(40)]), orders_csv([f"b{i}" for i in range(25)])
    s3 = Files({"one.csv": first, "two.csv.gz": gzip.compress(second[:300]) + gzip.compress(second[300:])})
    records = [FileRecord(f"f{i}", "bucket", key, None, "orders", format="csv") for i, key in enumerate(s3.objects)]
    reader = sources.stream_batch(s3, records, contract, tmp_path)
    blocks = list(reader)
    table = pa.Table.from_batches(blocks, reader.schema)
    assert len(blocks) > 4  # it really came in blocks
    assert table.column("_seq").to_pylist() == [0] * 40 + [1] * 25
    assert table.column("_row").to_pylist() == list(range(1, 41)) + list(range(1, 26))
    assert table.column("order_id").to_pylist()[-1] == "b24"  # the second gzip member too
    assert list(tmp_path.iterdir()) == []  # each local copy is deleted once read


def test_json_lines_with_a_byte_order_mark_are_read(contract, tmp_path):
    rows = [{"order_id": "j1", "customer_id": "C1", "order_ts": "2025-03-01T10:00:00Z", "status": "placed",
             "total_amount": 12.5, "currency": "EUR", "order_date": "2025-03-01"}]  # fmt: skip
    body = codecs.BOM_UTF8 + "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    record = FileRecord("f0", "bucket", "one.jsonl", None, "orders", format="jsonl")
    table = sources.stream_batch(Files({"one.jsonl": body}), [record], contract, tmp_path).read_all()
    assert table.column("order_id").to_pylist() == ["j1"] and table.column("total_amount").to_pylist() == ["12.5"]


def test_a_batch_cleaned_within_a_small_memory_limit_spills_and_gives_the_same_rows(contract, tmp_path):
    ids = [f"o{i:07d}" for i in range(300_000)]
    s3 = Files({"big.csv": orders_csv(ids) + orders_csv(ids[:1000], "2025-03-02", header=False)})
    record = FileRecord("f0", "bucket", "big.csv", None, "orders", format="csv")

    def cleaned(memory_limit):
        raw = sources.stream_batch(s3, [record], contract, tmp_path)
        return transform.clean(raw, contract, files=["f0"], memory_limit=memory_limit, spill_dir=str(tmp_path))

    with cleaned(64 * 2**20) as small, cleaned(None) as roomy:
        spilled = small.rows.con.execute("SELECT sum(temporary_storage_bytes) FROM duckdb_memory()").fetchone()[0]
        assert spilled > 0  # past its limit DuckDB went to disk rather than fail or grow
        assert (small.rows.num_rows, small.duplicates_dropped) == (roomy.rows.num_rows, roomy.duplicates_dropped)
        assert small.rows.num_rows == 300_000 and small.duplicates_dropped == 1000
        assert small.rows.counts("order_date") == roomy.rows.counts("order_date")


def test_an_append_writes_a_file_per_partition_with_the_statistics_readers_prune_by(contract, tmp_path):
    uri = str(tmp_path / "orders")
    days = [date(2025, 3, d) for d in (1, 2, 3)]
    source = pa.table(
        {
            "order_id": ["b", "a", "d", "c", "e"],
            "customer_id": ["C1", None, "C2", "C3", "C4"],
            "order_ts": pa.array([None] * 5, pa.timestamp("us", tz="UTC")),
            "status": ["placed"] * 5,
            "total_amount": pa.array([1, 2, 3, 4, 5], pa.decimal128(12, 2)),
            "currency": ["EUR"] * 5,
            "order_date": pa.array([days[0], days[0], days[1], days[1], days[2]], pa.date32()),
            "_source_file": ["f"] * 5,
        }
    )
    result = delta.merge_batch(uri, contract, Rows.of(source), app_id="t", version=1, storage_options={})
    table = delta.open_table(uri, {})
    assert result.table_rows == 5 and table.transaction_version("t") == 1  # one commit, with the app transaction
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    by_day = {a["partition.order_date"]: a for a in actions}
    assert sorted(by_day) == days and len(actions) == 3
    assert (by_day[days[0]]["min.order_id"], by_day[days[0]]["max.order_id"]) == ("a", "b")
    assert by_day[days[0]]["null_count.customer_id"] == 1 and by_day[days[0]]["num_records"] == 2
    assert sorted(delta.read(uri, {}).column("order_id").to_pylist()) == ["a", "b", "c", "d", "e"]
    # the statistics work: key d, now delivered for day 3, is found in day 2 only (day 3 holds e..e)
    moved = Rows.of(source.slice(2, 1).set_column(6, "order_date", pa.array([days[2]], pa.date32())))
    assert delta.key_partitions(table, contract, moved, {}) == {days[1]}


def test_a_memory_limit_too_small_even_to_spill_is_a_clear_error(contract, tmp_path):
    s3 = Files({"big.csv": orders_csv([f"o{i:07d}" for i in range(300_000)])})
    record = FileRecord("f0", "bucket", "big.csv", None, "orders", format="csv")
    raw = sources.stream_batch(s3, [record], contract, tmp_path)
    with pytest.raises(
        TableError, match=r"orders: .* more working memory than \[pipeline\] etl_memory_bytes \(8 MiB\)"
    ):
        transform.clean(raw, contract, files=["f0"], memory_limit=8 * 2**20, spill_dir=str(tmp_path))
