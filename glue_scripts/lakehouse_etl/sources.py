"""Read the raw files of a batch into one Arrow table of strings, with their lineage."""

from __future__ import annotations

import codecs
import gzip
import io
import tempfile
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from chalicelib.config import Contract
from chalicelib.ledger import FileRecord

LINEAGE = ("_seq", "_row")  # the file's position in the batch, the row in the file


def _text_stream(body: bytes) -> io.BytesIO:
    return io.BytesIO(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)


def _csv(data: io.BytesIO, contract: Contract) -> pa.Table:
    names = set(contract.column_names)
    return pacsv.read_csv(
        data,
        parse_options=pacsv.ParseOptions(delimiter=contract.delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def _jsonl(data: io.BytesIO, contract: Contract) -> pa.Table:
    """JSON lines as strings: DuckDB's reader renders numbers and booleans as their JSON text, in parallel
    and without a Python object per value (pyarrow's reader refuses a number where a string is declared)."""
    from lakehouse_etl.duck import session

    columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in contract.column_names) + "}"
    body = data.getvalue().removeprefix(codecs.BOM_UTF8)
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
        file.write(body)
        file.flush()
        con = session()
        try:
            return con.sql(
                f"SELECT * FROM read_json('{file.name}', format = 'newline_delimited', columns = {columns})"
            ).to_arrow_table()
        finally:
            con.close()


def read_batch(s3: Any, records: list[FileRecord], contract: Contract) -> pa.Table:
    """All rows of `records` (already validated, in delivery order) as strings plus lineage columns;
    `_seq` is the record's index in `records`."""
    tables = []
    for seq, record in enumerate(records):
        kwargs = {"Bucket": record.bucket, "Key": record.key}
        if record.version_id:  # exactly the version that was validated
            kwargs["VersionId"] = record.version_id
        data = _text_stream(s3.get_object(**kwargs)["Body"].read())
        table = _jsonl(data, contract) if record.format == "jsonl" else _csv(data, contract)
        for name in contract.column_names:  # a nullable column may be absent from a file
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
        tables.append(with_lineage(table.select(list(contract.column_names)), seq))
    if not tables:
        return empty_batch(contract)
    return pa.concat_tables(tables)


def with_lineage(table: pa.Table, seq: int) -> pa.Table:
    """Add `_seq` (the file's position in the batch) and `_row` (1-based), built by Arrow kernels. The file
    id itself is joined back only onto the rows that come out (`transform.clean(files=...)`)."""
    import pyarrow.compute as pc

    n = table.num_rows
    table = table.append_column("_seq", pa.repeat(pa.scalar(seq, pa.int32()), n))
    return table.append_column("_row", pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)))


def empty_batch(contract: Contract) -> pa.Table:
    fields = [pa.field(n, pa.string()) for n in contract.column_names]
    fields += [pa.field("_seq", pa.int32()), pa.field("_row", pa.int64())]
    return pa.schema(fields).empty_table()
