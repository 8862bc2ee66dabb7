import gzip
import hashlib
import io
import zlib

import pytest

from chalicelib.config import Limits
from chalicelib.ingest.validation import validate_stream

H = b"order_id,customer_id,order_ts,status,total_amount,currency,order_date\n"
R = b"O1,C1,2025-03-01T10:00:00Z,shipped,10.00,EUR,2025-03-01\n"
J = b'{"event_id":"e1","event_type":"view","event_ts":"2025-03-01T00:00:00Z","event_date":"2025-03-01"}\n'


def check(settings, data, key="raw/orders/f.csv", dataset="orders", limits=None):
    verdict = validate_stream(
        io.BytesIO(data), key=key, contract=settings.datasets[dataset], limits=limits or settings.limits
    )
    assert verdict.md5 == hashlib.md5(data).hexdigest() and verdict.size == len(data)  # always the whole file
    return verdict


@pytest.mark.parametrize(
    ("name", "data", "rows"),
    [
        ("plain", H + R * 3, 3),
        ("utf8 bom and crlf", b"\xef\xbb\xbf" + (H + R * 2).replace(b"\n", b"\r\n"), 2),
        (
            "quoted newline and delimiter",
            H + b'O1,C1,2025-03-01T10:00:00Z,"ship\nped, ok",1.00,EUR,2025-03-01\n' + R,
            2,
        ),
        ("no final newline", H + R + R.rstrip(), 2),
        (
            "optional column absent",
            H.replace(b",currency", b"") + b"O1,C1,2025-03-01T10:00:00Z,shipped,1.00,2025-03-01\n",
            1,
        ),
        (
            "columns in another order",
            b"order_date,order_id,customer_id,order_ts,status,total_amount,currency\n"
            b"2025-03-01,O1,C1,2025-03-01T10:00:00Z,shipped,1.00,EUR\n",
            1,
        ),
        ("non-ascii utf8", H + "O1,C1,2025-03-01T10:00:00Z,réglé ✓,1.00,EUR,2025-03-01\n".encode(), 1),
    ],
)
def test_accepts_valid_csv(settings, name, data, rows):
    verdict = check(settings, data)
    assert verdict.ok, verdict
    assert (verdict.format, verdict.rows, verdict.compressed) == ("csv", rows, False)


def test_accepts_gzip_and_multi_member_gzip(settings):
    one = check(settings, gzip.compress(H + R * 1000), key="raw/orders/f.csv.gz")
    assert one.ok and one.compressed and one.rows == 1000
    two = check(settings, gzip.compress(H + R) + gzip.compress(R * 4), key="raw/orders/f.csv.gz")
    assert two.ok and two.rows == 5


def test_accepts_json_lines_with_bom_and_blank_lines(settings):
    verdict = check(settings, b"\xef\xbb\xbf" + J + b"\n  \n" + J, key="raw/clickstream/e.jsonl", dataset="clickstream")
    assert verdict.ok and verdict.rows == 2 and verdict.format == "jsonl"


def bomb() -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return z.compress(H) + b"".join(z.compress(R * 50_000) for _ in range(20)) + z.flush()


@pytest.mark.parametrize(
    ("name", "data", "key", "code", "line"),
    [
        ("empty", b"", "f.csv", "EMPTY_FILE", None),
        ("header only", H, "f.csv", "NO_DATA_ROWS", None),
        ("header only crlf", H.replace(b"\n", b"\r\n"), "f.csv", "NO_DATA_ROWS", None),
        ("binary", bytes(range(256)) * 4, "f.csv", "BINARY_CONTENT", None),
        (
            "invalid utf8 in a row",
            H + R + b"O2,C\xff,2025-03-01T10:00:00Z,x,1.00,EUR,2025-03-01\n",
            "f.csv",
            "INVALID_UTF8",
            None,
        ),
        ("invalid utf8 in the header", b"order_id\xff,x\n1,2\n", "f.csv", "INVALID_UTF8", 1),
        ("wrong delimiter", H.replace(b",", b";") + R.replace(b",", b";"), "f.csv", "WRONG_DELIMITER", 1),
        ("tab delimiter", H.replace(b",", b"\t") + R.replace(b",", b"\t"), "f.csv", "WRONG_DELIMITER", 1),
        ("missing required columns", b"order_id,customer_id\nO1,C1\n", "f.csv", "MISSING_COLUMNS", 1),
        ("unknown column", H.rstrip() + b",coupon\n" + R.rstrip() + b",X\n", "f.csv", "UNKNOWN_COLUMNS", 1),
        ("duplicate column", H.rstrip() + b",status\n" + R.rstrip() + b",x\n", "f.csv", "DUPLICATE_COLUMNS", 1),
        ("ragged row", H + R + R + b"O3,C1\n" + R, "f.csv", "RAGGED_ROW", 4),
        ("extra field", H + R + R.rstrip() + b",surplus\n", "f.csv", "RAGGED_ROW", 3),
        ("unclosed quote", H + b'O1,"C1,2025-03-01T10:00:00Z\n' + R * 2, "f.csv", "RAGGED_ROW", 2),
        ("truncated gzip", gzip.compress(H + R * 5000)[:-300], "f.csv.gz", "TRUNCATED_GZIP", None),
        ("corrupt gzip", b"\x1f\x8b\x08\x00" + b"garbage" * 50, "f.csv.gz", "CORRUPT_GZIP", None),
        (".gz name, plain content", H + R, "f.csv.gz", "CORRUPT_GZIP", None),
        ("decompression bomb", bomb(), "f.csv.gz", "DECOMPRESSION_BOMB", None),
        ("json lines for a csv-only dataset", J, "f.jsonl", "FORMAT_NOT_ACCEPTED", None),
    ],
)
def test_rejects_bad_csv_with_a_reason(settings, name, data, key, code, line):
    verdict = check(settings, data, key=f"raw/orders/{key}")
    assert (verdict.code, verdict.line) == (code, line), verdict
    assert verdict.message and verdict.rows == 0


@pytest.mark.parametrize(
    ("name", "data", "code", "line"),
    [
        ("broken line", J + b'{"event_id": "e2",\n' + J, "BAD_JSON", 2),
        ("not an object", J + b"[1, 2]\n", "NOT_AN_OBJECT", 2),
        ("unknown field", J + J.replace(b'"event_id"', b'"evnt_id"'), "UNKNOWN_COLUMNS", 2),
        ("required field never present", b'{"event_id":"e1"}\n', "MISSING_COLUMNS", None),
        ("invalid utf8", J + b'{"event_id":"\xff"}\n', "INVALID_UTF8", 2),
        ("csv in a jsonl file", b"event_id,event_type\ne1,view\n", "BAD_JSON", 1),
        ("only blank lines", b"\n\n", "NO_DATA_ROWS", None),
    ],
)
def test_rejects_bad_json_lines_with_line_numbers(settings, name, data, code, line):
    verdict = check(settings, data, key="raw/clickstream/e.jsonl", dataset="clickstream")
    assert (verdict.code, verdict.line) == (code, line), verdict


def test_lines_longer_than_the_limit_are_rejected(settings):
    limits = Limits(max_line_bytes=1024)
    long_row = b"O1,C1,2025-03-01T10:00:00Z," + b"x" * 5000 + b",1.00,EUR,2025-03-01\n"
    assert check(settings, H + R + long_row, limits=limits).code == "LINE_TOO_LONG"
    assert check(settings, b"order_id" * 500 + b"\n" + R, limits=limits).code == "LINE_TOO_LONG"
    verdict = check(
        settings, J + b'{"event_id":"' + b"e" * 5000 + b'"}\n', key="e.jsonl", dataset="clickstream", limits=limits
    )
    assert (verdict.code, verdict.line) == ("LINE_TOO_LONG", 2)


def test_decompressed_size_is_capped_even_at_a_plausible_ratio(settings):
    data = gzip.compress(H + R * 40_000)  # ~2.3 MB of text, a normal ratio
    verdict = check(settings, data, key="f.csv.gz", limits=Limits(max_decompressed_bytes=1_000_000))
    assert verdict.code == "DECOMPRESSION_BOMB" and "1000000 byte limit" in verdict.message


def test_unknown_extension_uses_the_only_format_and_refuses_to_guess_between_two(settings):
    assert check(settings, H + R, key="raw/orders/export.txt").ok
    verdict = check(settings, b'{"review_id":"r"}\n', key="raw/reviews/export.txt", dataset="reviews")
    assert verdict.code == "UNKNOWN_FORMAT"


class Flaky(io.RawIOBase):
    """A body whose connection drops after the first chunk."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, 0

    def read(self, n=-1):
        self.calls += 1
        if self.calls > 1:
            raise ConnectionResetError("connection reset by peer")
        return self.data[: 64 * 1024]


def test_a_read_failure_is_raised_for_retry_not_turned_into_a_rejection(settings):
    with pytest.raises(ConnectionResetError):
        validate_stream(
            Flaky(H + R * 100_000), key="raw/orders/f.csv", contract=settings.datasets["orders"], limits=settings.limits
        )


def test_a_verdict_names_the_columns_a_file_carries_and_its_layout_ignores_values_and_compression(settings):
    from chalicelib.ingest.layout import file_layout

    without_currency = H.replace(b",currency", b"") + b"O1,C1,2025-03-01T10:00:00Z,shipped,1.00,2025-03-01\n"
    assert "currency" not in check(settings, without_currency).columns
    assert check(settings, H + R).columns == tuple(H.decode().strip().split(","))  # the header's own order
    events = check(
        settings, J + J.replace(b'"e1"', b'"e2","product_id":"P1"'), "raw/clickstream/f.jsonl", "clickstream"
    )
    assert events.columns == ("event_date", "event_id", "event_ts", "event_type", "product_id")
    day = file_layout("raw/orders/ingest_date=2026-12-01/a.csv", "raw/orders/", "csv", ["b", "a"])
    assert day == file_layout("raw/orders/ingest_date=2026-12-02/b.csv.gz", "raw/orders/", "csv", ["a", "b"])
    assert day == "csv; columns a,b; folders ingest_date=*"
    assert file_layout("raw/orders/2026/12/a.csv", "raw/orders/", "csv", ["a"]).endswith("folders */*")
    assert file_layout("raw/orders/a.csv", "raw/orders/", "jsonl", ["a"]) == "jsonl; columns a; folders (none)"
