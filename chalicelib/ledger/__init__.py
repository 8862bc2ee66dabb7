"""The file ledger: one record per delivered object version, one content claim per MD5, the processed/ jobs'
batches and the pipeline's runs.

`base.Ledger` writes the flow once; `dynamodb.DynamoDBLedger` (AWS) and `memory.InMemoryLedger` (fast tests)
only store items. The records and their statuses are in `records`.
"""

from chalicelib.ledger.base import Ledger
from chalicelib.ledger.dynamodb import (
    BY_TIME_INDEX,
    LEDGER_INDEXES,
    LEDGER_TABLE_SPEC,
    PENDING_INDEX,
    DynamoDBLedger,
    ledger_for,
)
from chalicelib.ledger.memory import InMemoryLedger
from chalicelib.ledger.records import (
    FINAL,
    Batch,
    Claim,
    FileRecord,
    FileResult,
    Run,
    Status,
    content_pk,
    file_pk,
    now_iso,
)

__all__ = [
    "BY_TIME_INDEX",
    "FINAL",
    "LEDGER_INDEXES",
    "LEDGER_TABLE_SPEC",
    "PENDING_INDEX",
    "Batch",
    "Claim",
    "DynamoDBLedger",
    "FileRecord",
    "FileResult",
    "InMemoryLedger",
    "Ledger",
    "Run",
    "Status",
    "content_pk",
    "file_pk",
    "ledger_for",
    "now_iso",
]
