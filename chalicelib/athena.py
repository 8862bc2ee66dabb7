"""SQL over the lake: the read-only guard every query passes, and Athena for deployed stages.

The same SQL text runs on Athena (Trino) for a deployed stage and on DuckDB for the local stage, over tables
with the same names (`processed_orders`, `curated_daily_sales_by_category`, `raw_orders`). This module only
needs boto3, so a Lambda can use it; the DuckDB side lives with the CLI (`lakehouse/query.py`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.errors import QueryError as QueryError  # re-exported: the SQL engines' callers catch it here

if TYPE_CHECKING:
    from types_boto3_athena import AthenaClient
    from types_boto3_glue import GlueClient

    from chalicelib.config import Settings, Stage

# Athena's longest query string: 262,144 bytes, not adjustable (Athena "Service Quotas", and StartQueryExecution's
# QueryString constraint); a longer one is refused with InvalidRequestException. The local stage refuses it too.
QUERY_STRING_LIMIT = 262_144
READ_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "EXPLAIN", "VALUES", "TABLE")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    engine: str
    bytes_scanned: int | None = None  # what the engine read (Athena bills by it)
    details: dict[str, Any] = field(default_factory=dict)


# Statements that are not reads, each refused as such; any other first word is a syntax error.
_OTHER_STATEMENTS = re.compile(
    "INSERT|UPDATE|DELETE|MERGE|UPSERT|REPLACE|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|COPY|ATTACH|DETACH|CALL|UNLOAD|"
    "SET|RESET|PRAGMA|INSTALL|LOAD|USE|EXPORT|IMPORT|VACUUM|CHECKPOINT|PREPARE|EXECUTE|DEALLOCATE|BEGIN|START|COMMIT|"
    "ROLLBACK|ABORT|ANALYZE|MSCK|REFRESH|OPTIMIZE|CACHE|UNCACHE|KILL|COMMENT"
)


def _blank(match: re.Match[str]) -> str:
    """A comment or quoted text as spaces (its quotes and line breaks kept): positions in the text stay right."""
    text = match[0]
    if text[0] in "'\"":
        return text[0] + re.sub(r"[^\n]", " ", text[1:-1]) + text[-1]
    return re.sub(r"[^\n]", " ", text)


def position(text: str, index: int) -> str:
    """`line L, column C` (1-based) of `index` in `text`."""
    line_start = text.rfind("\n", 0, index) + 1
    return f"line {text.count(chr(10), 0, index) + 1}, column {index - line_start + 1}"


def within_athena_limit(sql: str) -> None:
    """Refuse a query string longer than Athena takes, with the error Athena's StartQueryExecution answers (a
    ClientError: InvalidRequestException), so the local stage's SQL engine is no kinder than Athena."""
    size = len(sql.encode())
    if size <= QUERY_STRING_LIMIT:
        return
    from botocore.exceptions import ClientError

    message = (
        f"1 validation error detected: Value at 'queryString' ({size} bytes) failed to satisfy constraint: "
        f"Member must have length less than or equal to {QUERY_STRING_LIMIT}"
    )
    raise ClientError(
        {
            "Error": {"Code": "InvalidRequestException", "Message": message},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": 400,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "StartQueryExecution",
    )


def read_only(sql: str) -> str:
    """The one statement in `sql`, if it only reads; anything else is refused before it reaches an engine.

    Written by hand because no library here parses both dialects: comments and quoted text are blanked out,
    then the text must be a single statement starting with a read keyword and naming no write keyword. A first
    word that starts no statement at all is a syntax error, said with its place.
    """
    text = sql.strip().rstrip(";").strip()
    blanked = _STRINGS.sub(_blank, _COMMENTS.sub(_blank, text))
    bare = blanked.strip().rstrip(";").strip()
    if not bare:
        raise QueryError("the query is empty")
    if ";" in bare:
        raise QueryError("one statement at a time, please (the query has more than one)")
    first = bare.split(None, 1)[0].upper()
    if first not in READ_STATEMENTS:
        if _OTHER_STATEMENTS.fullmatch(first):
            raise QueryError(f"queries are read-only: a {first} statement is refused")
        at = position(text, len(blanked) - len(blanked.lstrip()))
        raise QueryError(
            f"syntax error at {at}: {bare.split(None, 1)[0]!r} starts no statement; a query starts with "
            + ", ".join(READ_STATEMENTS)
        )
    writes = re.search(
        r"\b(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|COPY|ATTACH|CALL|UNLOAD)\b",
        bare,
        re.IGNORECASE,
    )
    if writes:
        raise QueryError(f"queries are read-only: {writes[1].upper()} is refused")
    return text


class Athena:
    """Queries on Athena in the stage's workgroup and Glue database: start, wait with back-off, read."""

    name = "athena"

    def __init__(
        self,
        athena: AthenaClient,
        database: str,
        workgroup: str,
        output: str,
        *,
        glue: GlueClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.athena, self.database, self.workgroup, self.output = athena, database, workgroup, output
        self.glue, self.sleep, self.clock = glue, sleep, clock

    @classmethod
    def for_stage(cls, settings: Settings, stage: Stage) -> Athena:
        from chalicelib.aws import ClientSettings, client

        config = ClientSettings.for_stage(stage)
        output = f"s3://{stage.bucket}/{settings.zones.athena_results}"
        return cls(
            client("athena", config), stage.glue_database, stage.athena_workgroup, output, glue=client("glue", config)
        )

    def tables(self) -> set[str]:
        """The tables of the stage's Glue database (what Athena can query)."""
        if self.glue is None:
            raise QueryError("this Athena engine was built without a Glue client: it cannot list tables")
        pages = self.glue.get_paginator("get_tables").paginate(DatabaseName=self.database)
        return {t["Name"] for page in pages for t in page["TableList"]}

    def run(self, sql: str, timeout: float = 300.0) -> QueryResult:
        """Run one read-only statement in the stage's workgroup; stopped and a QueryError after `timeout` s."""
        query_id = self.athena.start_query_execution(
            QueryString=read_only(sql),
            QueryExecutionContext={"Database": self.database},
            WorkGroup=self.workgroup,
            ResultConfiguration={"OutputLocation": self.output},  # the workgroup may enforce its own
        )["QueryExecutionId"]
        deadline, delay = self.clock() + timeout, 0.2
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                reason = execution["Status"].get("StateChangeReason", "no reason given")
                raise QueryError(f"Athena query {query_id} {state}: {reason}")
            if self.clock() >= deadline:
                self.athena.stop_query_execution(QueryExecutionId=query_id)  # no orphan query keeps billing
                raise QueryError(f"Athena query {query_id} did not finish in {timeout:g} s; it was stopped")
            self.sleep(delay)
            delay = min(delay * 2, 5.0)
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        pages = self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        for page in pages:
            result = page["ResultSet"]
            if not columns:
                columns = [c["Name"] for c in result["ResultSetMetadata"]["ColumnInfo"]]
                data = result["Rows"][1:]  # the first row of the first page repeats the header
            else:
                data = result["Rows"]
            rows.extend(tuple(cell.get("VarCharValue") for cell in row["Data"]) for row in data)
        scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
        return QueryResult(columns, rows, "athena", scanned, {"query_id": query_id})
