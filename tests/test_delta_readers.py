"""The read path of Delta tables (`delta.read`, the Python API's `table`, and the DuckDB views of `lakehouse query`)
on tables as delta-rs's MERGE leaves them (files with `string_view` columns) and as other writers make them: Spark
(Sail), Parquet files with INT96 timestamps under a hand-written log, column mapping. Each view has the Delta
schema's types and the log's partition values; what cannot be read right is refused with a one-line error."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from lakehouse_etl import delta, duck, local_sql

from chalicelib.errors import TableError

NOON = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _view(uri: str) -> Any:
    """A DuckDB session with `v`: the table's view as `lakehouse query` builds it."""
    con = duck.session()
    local_sql.register(con, "v", DeltaTable(uri), {}, None)
    return con


def _upsert(uri: str, rows: pa.Table) -> None:
    """A MERGE by `id`, as the pipeline's: delta-rs 1.6 writes its files with `string_view` columns."""
    table = DeltaTable(uri)
    merger = table.merge(rows, "t.id = s.id", source_alias="s", target_alias="t")
    merger.when_matched_update_all().when_not_matched_insert_all().execute()


def _logged_table(
    root: Path,
    fields: list[tuple[str, str]],
    files: list[tuple[str, pa.Table, dict[str, Any], bool]],
    partitions: tuple[str, ...] = (),
) -> str:
    """A Delta table whose log is written by hand, as another writer's: `files` are (path, rows, partition values as
    the log spells them, INT96 timestamps or not)."""
    (root / "_delta_log").mkdir(parents=True)
    schema = {"type": "struct", "fields": [{"name": n, "type": t, "nullable": True, "metadata": {}} for n, t in fields]}
    actions: list[dict[str, Any]] = [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {
            "metaData": {
                "id": "hand-written",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema),
                "partitionColumns": list(partitions),
                "configuration": {},
                "createdTime": 0,
            }
        },
    ]
    for path, rows, values, int96 in files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, root / path, use_deprecated_int96_timestamps=int96)
        add = {"path": path, "partitionValues": values, "size": os.path.getsize(root / path)}
        actions.append({"add": {**add, "modificationTime": 0, "dataChange": True}})
    (root / "_delta_log" / f"{0:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))
    return str(root)


def _every_type(ids: list[str], status: str, day: date) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "status": pa.array([status] * n, pa.string()),
            "quantity": pa.array([len(i) for i in ids], pa.int32()),
            "views": pa.array(range(n), pa.int64()),
            "score": pa.array([0.5] * n, pa.float64()),
            "paid": pa.array([status == "shipped"] * n, pa.bool_()),
            "amount": pa.array([Decimal("-2.50")] * n, pa.decimal128(12, 2)),
            "placed_at": pa.array([NOON] * n, pa.timestamp("us", tz="UTC")),
            "day": pa.array([day] * n, pa.date32()),
        }
    )


def test_a_merged_compacted_and_vacuumed_table_reads_with_a_filter_on_every_column_type(tmp_path):
    uri = str(tmp_path / "orders")
    write_deltalake(uri, _every_type(["a", "b"], "placed", date(2026, 11, 1)), partition_by=["day"])
    _upsert(uri, _every_type(["b", "cc"], "shipped", date(2026, 11, 1)))  # b updated, cc new
    _upsert(uri, _every_type(["dd"], "shipped", date(2026, 11, 2)))  # a partition of one merged file
    delta.housekeeping(uri, {})
    DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    files = [pq.read_schema(f) for f in DeltaTable(uri).file_uris()]
    assert any(pa.string_view() in s.types for s in files)  # compaction left the one-file partition as MERGE wrote it

    def ids(where: list[tuple[str, str, Any]]) -> list[str]:
        got = delta.read(uri, {}, columns=["id", "status"], filters=where)
        assert got.schema == pa.schema([("id", pa.string()), ("status", pa.string())])  # plain strings
        return sorted(got.column("id").to_pylist())

    assert ids([("status", "=", "shipped")]) == ["b", "cc", "dd"]
    assert ids([("status", ">=", "s"), ("id", "!=", "b")]) == ["cc", "dd"]
    assert ids([("id", "in", ["a", "dd"])]) == ["a", "dd"]
    assert ids([("id", "not in", ["a", "dd"])]) == ["b", "cc"]
    assert ids([("quantity", ">", 1)]) == ["cc", "dd"]
    assert ids([("views", "=", 0), ("day", "=", date(2026, 11, 1))]) == ["a", "b"]
    assert ids([("score", "<", 1.0)]) == ["a", "b", "cc", "dd"]
    assert ids([("paid", "=", False)]) == ["a"]
    assert ids([("amount", "=", Decimal("-2.50"))]) == ["a", "b", "cc", "dd"]
    assert ids([("placed_at", "=", NOON)]) == ["a", "b", "cc", "dd"]
    assert ids([("placed_at", ">", NOON)]) == []
    assert ids([("day", ">", date(2026, 11, 1))]) == ["dd"]
    whole = delta.read(uri, {})
    assert whole.schema == _every_type([], "", date.today()).schema and whole.num_rows == 4
    con = _view(uri)
    assert con.sql("SELECT id FROM v WHERE status = 'shipped' ORDER BY id").fetchall() == [("b",), ("cc",), ("dd",)]


def test_a_bad_filter_is_a_one_line_error_naming_what_is_wrong(tmp_path):
    uri = str(tmp_path / "orders")
    write_deltalake(uri, _every_type(["a"], "placed", date(2026, 11, 1)))
    for where, words in (
        ([("colour", "=", "red")], "no column 'colour'; the table has id, status, "),
        ([("status", "~", "x")], "filter operator '~' is not one of =, ==, !=, <, <=, >, >=, in, not in"),
        ([("status", "in", "placed")], "filter 'status' in needs a non-empty list of values, not 'placed'"),
        ([("status", "=", object)], "filter on 'status' (string): cannot compare with <class 'object'>"),
        ([("status", "=")], "a filter is a (column, op, value) triple, not ('status', '=')"),
        ("status = 'x'", "filters are a list of (column, op, value) triples, not \"status = 'x'\""),
        (("status", "=", "x"), "a filter is a (column, op, value) triple, not 'status'"),
    ):
        with pytest.raises(TableError) as refused:
            delta.read(uri, {}, filters=where)
        assert words in str(refused.value) and "\n" not in str(refused.value)
    for options, words in (
        ({"columns": ["id", "nope"]}, "no column 'nope'; the table has id, status, "),
        ({"as_of": "yesterday"}, "as_of 'yesterday' is not an ISO 8601 time"),
    ):
        with pytest.raises(TableError) as refused:
            delta.read(uri, {}, **options)
        assert words in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("int96_first", [True, False])
def test_a_timestamp_column_has_the_delta_type_whichever_writer_s_file_the_log_lists_first(tmp_path, int96_first):
    """Spark writes INT96 timestamps, which DuckDB reads as a naive TIMESTAMP; delta-rs writes UTC timestamps. The
    view's type is the Delta schema's (TIMESTAMP WITH TIME ZONE), whichever comes first, and the instants agree."""
    rows = pa.table({"id": ["x"], "placed": pa.array([NOON], pa.timestamp("us", tz="UTC"))})
    files = [("spark.parquet", rows, {}, True), ("delta-rs.parquet", rows, {}, False)]
    uri = _logged_table(tmp_path / "t", [("id", "string"), ("placed", "timestamp")], files[:: 1 if int96_first else -1])
    view = _view(uri).sql("SELECT placed FROM v")
    assert [str(t) for t in view.types] == ["TIMESTAMP WITH TIME ZONE"]
    assert view.fetchall() == [(NOON,), (NOON,)]
    assert delta.read(uri, {}).column("placed").to_pylist() == [NOON, NOON]


def test_a_string_partition_value_spelled_null_is_that_string_not_sql_null(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"id": ["a", "b", "c"], "tag": ["null", "x", None]}), partition_by=["tag"])
    con = _view(uri)
    assert con.sql("SELECT id, tag FROM v ORDER BY id").fetchall() == [("a", "null"), ("b", "x"), ("c", None)]
    assert con.sql("SELECT id FROM v WHERE tag IS NULL").fetchall() == [("c",)]


def test_a_key_value_folder_above_the_table_does_not_override_its_column(tmp_path):
    """A lake under `s3://bucket/status=archived/...`: DuckDB's hive parsing would read `status` from that folder."""
    uri = str(tmp_path / "status=archived" / "orders")
    rows = pa.table({"id": ["a", "b"], "status": ["placed", "shipped"], "day": ["d1", "d2"]})
    write_deltalake(uri, rows, partition_by=["day"])
    con = _view(uri)
    assert con.sql("SELECT id, status, day FROM v ORDER BY id").fetchall() == [
        ("a", "placed", "d1"),
        ("b", "shipped", "d2"),
    ]
    assert con.sql("SELECT id FROM v WHERE day = 'd2'").fetchall() == [("b",)]


def test_a_negative_decimal_partition_value_is_read_by_the_sql_view_and_refused_clearly_by_delta_read(tmp_path):
    """delta-rs 1.6 cannot turn -1.50 into an Arrow partition expression (it spells it -1.-50): the SQL view takes
    the value from the log; `delta.read` says so in one line instead of crashing."""
    files = [
        ("amount=-1.50/a.parquet", pa.table({"id": ["a"]}), {"amount": "-1.50"}, False),
        ("amount=2.00/b.parquet", pa.table({"id": ["b"]}), {"amount": "2.00"}, False),
    ]
    uri = _logged_table(tmp_path / "t", [("id", "string"), ("amount", "decimal(5,2)")], files, ("amount",))
    assert _view(uri).sql("SELECT id, amount FROM v WHERE amount < 0").fetchall() == [("a", Decimal("-1.50"))]
    with pytest.raises(TableError) as refused:
        delta.read(uri, {}, filters=[("amount", "<", 0)])
    assert str(refused.value).startswith(f"{uri}: a partition value delta-rs cannot give to Arrow: ")
    assert "\n" not in str(refused.value)


def test_a_column_mapped_table_is_refused_by_both_read_paths(tmp_path):
    """Column mapping (reader version 2, no reader features) names the files' columns by physical names: the Arrow
    dataset read every column as NULL, silently. Both read paths say they cannot."""
    uri = str(tmp_path / "t")
    write_deltalake(
        uri, pa.table({"id": ["a"], "status": ["placed"]}), configuration={"delta.columnMapping.mode": "name"}
    )
    assert DeltaTable(uri).protocol().min_reader_version == 2
    with pytest.raises(
        TableError, match=r": the table uses column mapping \(mode name\), which the lakehouse's readers"
    ):
        delta.read(uri, {})
    with pytest.raises(TableError, match=r"^v: the table uses column mapping \(mode name\)"):
        _view(uri)


def test_filter_values_are_cast_to_the_column_s_type(tmp_path):
    """An int against a decimal, a naive time against a UTC timestamp (read as UTC): what SQL would coerce."""
    uri = str(tmp_path / "t")
    write_deltalake(uri, _every_type(["a"], "placed", date(2026, 11, 1)))
    assert delta.read(uri, {}, filters=[("amount", ">", -3), ("amount", "<", 0)]).num_rows == 1
    assert delta.read(uri, {}, filters=[("placed_at", "=", NOON.replace(tzinfo=None))]).num_rows == 1
    assert delta.read(uri, {}, filters=[("quantity", "in", [1, 2])]).num_rows == 1
    assert delta.read(uri, {}, filters=[("placed_at", "=", "2026-11-01 12:00:00")]).num_rows == 1  # a space, no zone
    assert delta.read(uri, {}, filters=[("quantity", "in", ["1", 2.0])]).num_rows == 1  # spellings mixed


def test_a_sail_written_table_merged_by_delta_rs_reads_right_on_both_read_paths(sail, tmp_path):
    """Spark (Sail) writes the table, partitioned by a string column that holds `null` as a value; delta-rs MERGEs a
    batch into it (string_view files). The SQL view keeps `null` a string and the UTC instants; `where` on a
    string column works through the Python read path."""
    uri = str(tmp_path / "orders")
    rows = pa.table(
        {
            "id": ["a", "b", "c"],
            "placed": pa.array([NOON] * 3, pa.timestamp("us", tz="UTC")),
            "tag": ["null", "x", None],
        }
    )
    sail.spark.createDataFrame(rows).write.format("delta").partitionBy("tag").save(uri)
    _upsert(
        uri,
        pa.table({"id": ["b", "d"], "placed": pa.array([NOON] * 2, pa.timestamp("us", tz="UTC")), "tag": ["x"] * 2}),
    )
    con = _view(uri)
    assert con.sql("SELECT id, tag FROM v ORDER BY id").fetchall() == [
        ("a", "null"),
        ("b", "x"),
        ("c", None),
        ("d", "x"),
    ]
    assert [str(t) for t in con.sql("SELECT placed FROM v").types] == ["TIMESTAMP WITH TIME ZONE"]
    assert con.sql(
        "SELECT count(*) FROM v WHERE tag = 'x' AND placed = TIMESTAMPTZ '2026-11-01 12:00:00+00'"
    ).fetchall() == [(2,)]
    got = delta.read(uri, {}, columns=["id"], filters=[("tag", "=", "null")])
    assert got.to_pylist() == [{"id": "a"}]


def test_a_table_whose_log_delta_rs_cannot_parse_is_refused_naming_it(sail, tmp_path):
    """Sail 0.7.2 logs the negative decimal partition value -1.50 as `-1.-50`, which delta-rs cannot parse."""
    uri = str(tmp_path / "t")
    rows = pa.table({"id": ["a"], "amount": pa.array([Decimal("-1.50")], pa.decimal128(5, 2))})
    sail.spark.createDataFrame(rows).write.format("delta").partitionBy("amount").save(uri)
    with pytest.raises(TableError) as refused:
        delta.read(uri, {})
    assert str(refused.value).startswith(f"{uri}: its Delta log cannot be read: ") and "-1.-50" in str(refused.value)
