"""Stream one file once and decide whether it may enter the lake.

One pass over the bytes computes MD5 and size, detects the format (CSV or JSON lines, optionally gzipped),
checks UTF-8, the header against the dataset contract, parseability, and counts rows. Memory is bounded
whatever the file size: bytes flow through in chunks of about a MiB.

Hashing overlaps parsing: `HashingReader` hands every chunk to a hashing thread (hashlib releases the GIL
on large buffers) while pyarrow's streaming CSV reader parses on the caller's thread. pyarrow is imported
inside the function that needs it, never at module import (cold starts).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import queue
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from chalicelib.config import Contract, Limits
from chalicelib.errors import Rejected

CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF = 64 * 1024
_OTHER_DELIMITERS = (",", ";", "\t", "|")
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class Verdict:
    md5: str
    size: int
    format: str | None = None
    compressed: bool = False
    rows: int = 0
    columns: tuple[str, ...] = ()  # the columns the file carries (CSV: the header's order; JSON lines: sorted)
    code: str | None = None  # None: accepted
    message: str | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        """The file was accepted."""
        return self.code is None


class HashingReader(io.RawIOBase):
    """A read-only stream that MD5-hashes and counts every byte read through it, on a second thread."""

    def __init__(self, source: IO[bytes] | Any, queue_chunks: int = 8) -> None:
        super().__init__()
        self._source = source
        self._md5 = hashlib.md5()
        self._queue: queue.Queue[bytes | None] = queue.Queue(queue_chunks)  # bounds memory
        self._thread = threading.Thread(target=self._hash, name="md5", daemon=True)
        self._thread.start()
        self.size = 0
        self.error: BaseException | None = None  # a failure of the source, kept across pyarrow's wrapping
        self._finished = False

    def _hash(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._md5.update(chunk)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the source, hashed and counted on the way."""
        try:
            chunk = self._source.read(CHUNK if size is None or size < 0 else size)
        except Exception as exc:  # a network error is not the file's fault: remember it, re-raise later
            self.error = exc
            raise
        if chunk:
            self.size += len(chunk)
            self._queue.put(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` from read()."""
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def drain(self) -> None:
        """Read to the end, so the hash and size cover the whole object."""
        while self.read(CHUNK):
            pass

    def hexdigest(self) -> str:
        """Finish hashing (after the last read) and return the digest."""
        self.close()
        self._thread.join()
        return self._md5.hexdigest()

    def close(self) -> None:
        if not self._finished:  # stop the hashing thread exactly once, whatever happened before
            self._finished = True
            self._queue.put(None)
        super().close()


class GunzipReader(io.RawIOBase):
    """Decompress gzip (several members allowed) with caps on the output size and the expansion ratio."""

    def __init__(self, source: IO[bytes], limits: Limits) -> None:
        super().__init__()
        self._source, self._limits = source, limits
        self._zlib = zlib.decompressobj(wbits=31)
        self._pending = b""
        self.compressed = 0
        self.decompressed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` decompressed bytes; past the limits a Rejected error."""
        size = CHUNK if size is None or size < 0 else size
        while True:
            if self._pending:
                data = self._inflate(self._pending, size)
                if data:
                    return data
            raw = self._source.read(64 * 1024)  # small steps keep the ratio check close to the truth
            if not raw:
                if not self._zlib.eof and (self.compressed or self._pending):
                    raise Rejected("TRUNCATED_GZIP", "the gzip stream ends before its end marker (truncated upload?)")
                return b""
            self.compressed += len(raw)
            self._pending += raw

    def _inflate(self, raw: bytes, size: int) -> bytes:
        if self._zlib.eof:  # the next gzip member, if any
            self._zlib = zlib.decompressobj(wbits=31)
        try:
            data = self._zlib.decompress(raw, size)  # max_length: never inflate more than asked for
        except zlib.error as exc:
            raise Rejected("CORRUPT_GZIP", f"the gzip stream is corrupt: {exc}") from exc
        self._pending = self._zlib.unconsumed_tail or self._zlib.unused_data
        self.decompressed += len(data)
        self._check_bomb()
        return data

    def _check_bomb(self) -> None:
        limits = self._limits
        if self.decompressed > limits.max_decompressed_bytes:
            raise Rejected("DECOMPRESSION_BOMB", f"inflates beyond the {limits.max_decompressed_bytes} byte limit")
        # Small files may expand a lot harmlessly; the ratio matters once the output is big.
        if self.decompressed > 16 * CHUNK and self.decompressed > limits.max_compression_ratio * max(
            self.compressed, 1
        ):
            raise Rejected(
                "DECOMPRESSION_BOMB",
                f"expands more than {limits.max_compression_ratio}x "
                f"({self.compressed} bytes read became {self.decompressed})",
            )

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` from read()."""
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def expected_format(key: str, contract: Contract) -> str:
    """The format a key announces by its extension (`.gz` stripped), else the contract's only one."""
    name = key.lower().removesuffix(".gz")
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            if fmt not in contract.formats:
                raise Rejected(
                    "FORMAT_NOT_ACCEPTED",
                    f"{fmt} files are not accepted for {contract.name}; accepted: {list(contract.formats)}",
                )
            return fmt
    if len(contract.formats) == 1:
        return contract.formats[0]
    raise Rejected(
        "UNKNOWN_FORMAT",
        f"cannot tell the format of {key!r}: use one of the extensions {sorted(_EXTENSIONS)} (optionally + .gz)",
    )


def validate_stream(source: IO[bytes] | Any, *, key: str, contract: Contract, limits: Limits) -> Verdict:
    """Validate the bytes of one object against its dataset contract, reading `source` exactly once."""
    fmt, compressed, rows = None, False, 0
    columns: Iterable[str] = ()
    with HashingReader(source) as hashing:
        try:
            buffered = io.BufferedReader(hashing, CHUNK)
            compressed = buffered.peek(2)[:2] == _GZIP_MAGIC
            if key.lower().endswith(".gz") and not compressed and buffered.peek(1):
                raise Rejected("CORRUPT_GZIP", "the key ends in .gz but the content is not gzip")
            text: io.BufferedReader[Any] = (
                io.BufferedReader(GunzipReader(buffered, limits), CHUNK) if compressed else buffered
            )
            fmt = expected_format(key, contract)
            head = text.peek(_SNIFF)[:_SNIFF]
            if not head:
                raise Rejected("EMPTY_FILE", "the file is empty")
            if b"\x00" in head:
                raise Rejected("BINARY_CONTENT", "the file holds binary data (NUL bytes), not text")
            rows, columns = (_count_csv if fmt == "csv" else _count_jsonl)(text, contract, limits)
            if rows == 0:
                raise Rejected("NO_DATA_ROWS", "the file has no data rows" + (" (header only)" if fmt == "csv" else ""))
        except Rejected as rejected:
            hashing.drain()  # finish the MD5 and size: the ledger records them for rejected files too
            return Verdict(
                hashing.hexdigest(),
                hashing.size,
                fmt,
                compressed,
                0,
                code=rejected.code,
                message=rejected.message,
                line=rejected.line,
            )
        except Exception:
            if hashing.error is not None:
                raise hashing.error from None  # S3 read failure: retried by the caller
            raise
        hashing.drain()  # a trailing gzip member or bytes the parser did not need
        ordered = tuple(columns) if fmt == "csv" else tuple(sorted(columns))
        return Verdict(hashing.hexdigest(), hashing.size, fmt, compressed, rows, ordered)


def _decode_line(raw: bytes, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("INVALID_UTF8", f"line {line} is not valid UTF-8 (byte {exc.start})", line) from exc


def _read_header(text: io.BufferedReader, contract: Contract, limits: Limits) -> list[str]:
    raw = text.readline(limits.max_line_bytes + 1)  # consumed: pyarrow gets the rows after it
    if len(raw) > limits.max_line_bytes:
        raise Rejected("LINE_TOO_LONG", f"the header line is longer than {limits.max_line_bytes} bytes", 1)
    line = _decode_line(raw, 1).removeprefix(codecs.BOM_UTF8.decode()).rstrip("\r\n")
    header = [name.strip() for name in next(csv.reader([line], delimiter=contract.delimiter))]
    expected = set(contract.column_names)
    if len(header) == 1 and header[0] not in expected:
        for other in _OTHER_DELIMITERS:
            names = [n.strip() for n in header[0].split(other)]
            if other != contract.delimiter and len(names) > 1 and expected.intersection(names):
                raise Rejected(
                    "WRONG_DELIMITER",
                    f"the header is separated by {other!r}; {contract.name} files use {contract.delimiter!r}",
                    1,
                )
    duplicated = sorted({n for n in header if header.count(n) > 1})
    if duplicated:
        raise Rejected("DUPLICATE_COLUMNS", f"columns appear more than once: {duplicated}", 1)
    _check_columns(set(header), contract, line=1)
    return header


def _check_columns(seen: set[str], contract: Contract, line: int | None) -> None:
    unknown = sorted(seen - set(contract.column_names))
    if unknown:
        raise Rejected("UNKNOWN_COLUMNS", f"columns not in the {contract.name} contract: {unknown}", line)
    missing = [c for c in contract.required_columns if c not in seen]
    if missing:
        raise Rejected("MISSING_COLUMNS", f"required columns missing: {missing}", line)


LEASE_WAIT_SECONDS = 10.0


class _ArrowLease:
    """All that pyarrow's streaming CSV reader holds of ours: the stream it reads and the handler it calls for a
    bad row. Its release says the reader has let go of every Python object (see `_count_csv`)."""

    __slots__ = ("_released", "bad_rows", "read")
    closed = False  # pyarrow's PythonFile asks before each read

    def __init__(self, text: io.BufferedReader, bad_rows: list[Any], released: threading.Event) -> None:
        self.read = text.read  # a C method: no frame of ours that a traceback could keep holds the lease
        self.bad_rows, self._released = bad_rows, released

    def __call__(self, row: Any) -> str:
        self.bad_rows.append(row)
        return "error"

    def close(self) -> None:
        """Arrow closes what it read when it is done; the stream itself is the caller's (it drains it)."""

    def __del__(self) -> None:
        self._released.set()


def _count_csv(text: io.BufferedReader, contract: Contract, limits: Limits) -> tuple[int, list[str]]:
    import pyarrow as pa

    header = _read_header(text, contract, limits)
    if not text.peek(1):
        return 0, header  # header only
    bad_rows: list[Any] = []
    released = threading.Event()
    try:
        rows = _csv_rows(_ArrowLease(text, bad_rows, released), header, contract, limits)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if bad_rows:
            row = bad_rows[0]
            line = row.number + 1 if row.number is not None else None  # pyarrow counts rows after the header
            raise Rejected(
                "RAGGED_ROW",
                f"a row has {row.actual_columns} fields where the header has "
                f"{row.expected_columns}" + (f" (line {line})" if line else ""),
                line,
            ) from exc
        if "UTF8" in message or "UTF-8" in message:
            raise Rejected("INVALID_UTF8", "the file is not valid UTF-8") from exc
        if "straddling" in message or "block size" in message:
            raise Rejected(
                "LINE_TOO_LONG", f"a row is longer than {limits.max_line_bytes} bytes or a quote is never closed"
            ) from exc
        raise Rejected("PARSE_ERROR", f"the CSV cannot be parsed: {message}") from exc
    finally:
        # The reader reads ahead on Arrow's IO threads, and one of them may drop the last reference to the lease
        # after the rows are counted. Dropping a Python object takes the GIL; if the interpreter is exiting by
        # then, Python ends that thread with pthread_exit, whose unwinding through Arrow's noexcept C++ frames is
        # std::terminate: "terminate called without an active exception", exit 134, after `lakehouse check`
        # printed its verdict (apache/arrow issues 34314, 50482). So return only once Arrow has let go; bounded,
        # so that a reference we did not foresee costs at most that exit race, never a hung validator.
        released.wait(timeout=LEASE_WAIT_SECONDS)
    return rows, header


def _csv_rows(lease: _ArrowLease | None, header: list[str], contract: Contract, limits: Limits) -> int:
    """The rows after the header, counted by pyarrow's streaming reader (`lease` its only reference: this
    function lets go of it); its errors propagate."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    reader = None
    try:
        reader = pacsv.open_csv(
            # Buffered by Arrow, which copies each read into its own memory: handed the bytes objects themselves,
            # it would keep them in its blocks, each another Python object to let go of on its threads.
            pa.BufferedInputStream(pa.PythonFile(lease, mode="r"), CHUNK),
            # pyarrow refuses a row larger than its block: the block size is the row length limit.
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False, block_size=limits.max_line_bytes),
            parse_options=pacsv.ParseOptions(
                delimiter=contract.delimiter, newlines_in_values=True, invalid_row_handler=lease
            ),
            # Strings only: types are the ETL's business (row by row); here they would only cost time.
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in header}),
        )
        lease = None  # from here only the reader holds it
        rows = 0
        for batch in reader:  # a loop, not a generator expression, whose frame a traceback would keep
            rows += batch.num_rows
        return rows
    finally:
        # An error's traceback keeps this frame: it must not keep the lease, itself or through the reader, or
        # `_count_csv` would wait for ever.
        lease = reader = None


def _count_jsonl(text: io.BufferedReader, contract: Contract, limits: Limits) -> tuple[int, set[str]]:
    # Python's json module gives exact line numbers for broken lines, which pyarrow's reader does not.
    rows, line_no = 0, 0
    seen: set[str] = set()
    decoder = json.JSONDecoder()
    while raw := text.readline(limits.max_line_bytes + 1):
        line_no += 1
        if len(raw) > limits.max_line_bytes and not raw.endswith(b"\n"):
            raise Rejected("LINE_TOO_LONG", f"line {line_no} is longer than {limits.max_line_bytes} bytes", line_no)
        line = _decode_line(raw, line_no)
        if line_no == 1:
            line = line.removeprefix(codecs.BOM_UTF8.decode())
        if not line.strip():
            continue
        try:
            record = decoder.decode(line)
        except json.JSONDecodeError as exc:
            raise Rejected(
                "BAD_JSON", f"line {line_no} is not valid JSON: {exc.msg} (column {exc.colno})", line_no
            ) from exc
        if not isinstance(record, dict):
            raise Rejected("NOT_AN_OBJECT", f"line {line_no} is a JSON {type(record).__name__}, not an object", line_no)
        if not seen.issuperset(record):
            seen.update(record)
            unknown = sorted(seen - set(contract.column_names))
            if unknown:
                raise Rejected(
                    "UNKNOWN_COLUMNS",
                    f"line {line_no} has fields not in the {contract.name} contract: {unknown}",
                    line_no,
                )
        rows += 1
    if rows:
        # Per-record gaps are the ETL's to reject row by row; a field no record carries is a file problem.
        _check_columns(seen, contract, line=None)
    return rows, seen
