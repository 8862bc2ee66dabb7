"""Read the raw files of a batch as a stream of Arrow record batches of strings, with their lineage.

Nothing here holds a whole file in memory: each object is streamed to a local file (decompressed, its byte order
mark dropped), then parsed a block at a time, so a batch of any size within the limits passes through a bounded
amount of memory (docs/etl.md, "Memory").
"""

from __future__ import annotations

import codecs
import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from chalicelib.config import Contract
from chalicelib.ledger import FileRecord

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import GetObjectRequestTypeDef

LINEAGE = ("_seq", "_row")  # the file's position in the batch, the row in the file
BLOCK_BYTES = 2 * 1024**2  # CSV parsed this much at a time: twice [limits] max_line_bytes (a row must fit a block)
BATCH_ROWS = 128 * 1024  # JSON lines handed over this many rows at a time
_CHUNK = 8 * 1024**2  # download and decompression buffer
_GZIP = b"\x1f\x8b"


def local_copy(s3: S3Client, record: FileRecord, folder: Path, seq: int) -> Path:
    """The validated version of `record`'s object as a plain local file: streamed to disk, gunzipped (several
    members too, as the validator reads them) and without a UTF-8 byte order mark (DuckDB's JSON reader refuses
    one)."""
    kwargs: GetObjectRequestTypeDef = {"Bucket": record.bucket, "Key": record.key}
    if record.version_id:  # exactly the version that was validated
        kwargs["VersionId"] = record.version_id
    raw = folder / f"{seq}.raw"
    with open(raw, "wb") as out:
        shutil.copyfileobj(s3.get_object(**kwargs)["Body"], out, _CHUNK)
    with open(raw, "rb") as f:
        head = f.read(3)
    if not head.startswith(_GZIP) and not head.startswith(codecs.BOM_UTF8):
        return raw
    plain = folder / f"{seq}.txt"
    with gzip.open(raw) if head.startswith(_GZIP) else open(raw, "rb") as src, open(plain, "wb") as out:
        out.write(src.read(_CHUNK).removeprefix(codecs.BOM_UTF8))
        shutil.copyfileobj(src, out, _CHUNK)
    raw.unlink()
    return plain


def _csv(path: Path, contract: Contract) -> Iterator[pa.RecordBatch]:
    names = set(contract.column_names)
    yield from pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=contract.delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def _jsonl(path: Path, contract: Contract, memory_limit: int | None) -> Iterator[pa.RecordBatch]:
    """JSON lines as strings: DuckDB's reader renders numbers and booleans as their JSON text, in parallel
    and without a Python object per value (pyarrow's reader refuses a number where a string is declared)."""
    from lakehouse_etl.duck import session

    columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in contract.column_names) + "}"
    con = session(memory_limit=memory_limit, spill_dir=str(path.parent))
    try:
        query = f"SELECT * FROM read_json('{path}', format = 'newline_delimited', columns = {columns})"
        yield from con.sql(query).to_arrow_reader(BATCH_ROWS)  # in file order: preserve_insertion_order is on
    finally:
        con.close()


def stream_batch(
    s3: S3Client, records: list[FileRecord], contract: Contract, folder: Path, *, memory_limit: int | None = None
) -> pa.RecordBatchReader:
    """All rows of `records` (already validated, in delivery order) as strings plus lineage columns, a block at a
    time; `_seq` is the record's index in `records`. Each file is fetched when the stream reaches it, into
    `folder`, and deleted once read."""
    schema = empty_batch(contract).schema
    batches = (b for seq, r in enumerate(records) for b in read_file(s3, r, contract, folder, seq, memory_limit))
    return pa.RecordBatchReader.from_batches(schema, batches)


def read_file(
    s3: S3Client, record: FileRecord, contract: Contract, folder: Path, seq: int, memory_limit: int | None = None
) -> Iterator[pa.RecordBatch]:
    """One file of a batch (the `seq`th) as `stream_batch` reads it, a block at a time: fetched into `folder` when
    first asked for, deleted once read. The Spark engine's tasks read a file each with it (`spark.read_batch`)."""
    path = local_copy(s3, record, folder, seq)
    rows = 0
    parsed = _jsonl(path, contract, memory_limit) if record.format == "jsonl" else _csv(path, contract)
    for block in parsed:
        yield with_lineage(conform(block, contract), seq, rows)
        rows += block.num_rows
    path.unlink()


def conform(block: pa.RecordBatch, contract: Contract) -> pa.RecordBatch:
    """The contract's columns in its order; a nullable column absent from the file is all nulls."""
    arrays = [
        block.column(n) if n in block.schema.names else pa.nulls(block.num_rows, pa.string())
        for n in contract.column_names
    ]
    return pa.RecordBatch.from_arrays(arrays, names=list(contract.column_names))


def with_lineage(block: pa.RecordBatch, seq: int, first_row: int = 0) -> pa.RecordBatch:
    """Add `_seq` (the file's position in the batch) and `_row` (1-based in the file: `first_row` rows of it came
    before this block). The file id itself is joined back only onto the rows that come out
    (`transform.clean(files=...)`)."""
    import pyarrow.compute as pc

    n = block.num_rows
    block = block.append_column("_seq", pa.repeat(pa.scalar(seq, pa.int32()), n))
    ones = pa.repeat(pa.scalar(1, pa.int64()), n)  # call_function: pyarrow 24's stubs lack the generated names
    rows = pc.call_function("cumulative_sum", [ones], pc.CumulativeOptions(start=first_row))
    return block.append_column("_row", rows)


def empty_batch(contract: Contract) -> pa.Table:
    fields = [pa.field(n, pa.string()) for n in contract.column_names]
    fields += [pa.field("_seq", pa.int32()), pa.field("_row", pa.int64())]
    return pa.schema(fields).empty_table()
