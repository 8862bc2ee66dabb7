"""Files a dead validator left RECEIVED: announced to the validator again, and counted for the alarm.

A validator that dies mid-file (a Lambda timeout or crash on AWS, a SIGKILL of the local stage) leaves the file's
ledger record RECEIVED under its lease. On AWS its SQS message comes back once the queue's visibility timeout has
passed ("Amazon SQS visibility timeout", SQS Developer Guide:
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html), and that
delivery takes the expired lease over. The message does not come back when it went to the dead-letter queue, outlived
the queue's retention, or was held by the killed local stage (its queues live in memory). So the batcher's tick, every
minute, announces again (an S3 notification on the ingest queue) each file still RECEIVED once its lease *and* the
queue's visibility timeout after it have passed: any message still in flight would have been delivered by then and
taken the lease. A redelivery of a message that was only late is harmless: the ledger's conditional writes judge a
file once. A file is announced again at most MAX_ANNOUNCEMENTS times (a file that kills its validator must not loop
for ever); the `FilesReceivedPastLease` metric counts what stays RECEIVED past lease and visibility timeout, and the
stage's alarm (`chalicelib.stage.resources.received_alarm`) fires when that lasts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.config import Stage
from chalicelib.ingest.events import s3_notification
from chalicelib.ledger import FileRecord, Ledger, now_iso
from chalicelib.names import RECEIVED_PAST_LEASE_METRIC

log = logging.getLogger(__name__)

MAX_ANNOUNCEMENTS = 3  # then the file stays RECEIVED, counted by the metric, and the alarm says so
# How far back the tick looks (the time index, every minute): a day covers every announcement on the shipped settings
# (3 x (16 min lease + 90 min visibility)); a file RECEIVED for longer has alarmed for hours.
LOOKBACK = timedelta(days=1)
METRIC = RECEIVED_PAST_LEASE_METRIC  # the batcher Lambda's metric (app.py); its alarm: stage.resources.received_alarm


@dataclass(frozen=True)
class Recovery:
    """One look: the files announced again, and how many stay RECEIVED past lease and visibility timeout."""

    announced: tuple[str, ...] = ()
    past_lease: int = 0


def overdue(record: FileRecord, stage: Stage, now: datetime) -> bool:
    """RECEIVED, and its lease ended longer than the queue's visibility timeout ago: no delivery is coming."""
    due = now - timedelta(seconds=stage.queue_visibility_seconds)
    return record.lease_until is not None and record.lease_until <= now_iso(due)


def announce_again(record: FileRecord, stage: Stage, now: datetime) -> bool:
    """Overdue, announced fewer than MAX_ANNOUNCEMENTS times, and not in the last lease and visibility timeout
    (an announcement a backlog still holds)."""
    wait = timedelta(seconds=stage.lease_seconds + stage.queue_visibility_seconds)
    return (
        overdue(record, stage, now)
        and (record.reannounced or 0) < MAX_ANNOUNCEMENTS
        and (record.reannounced_at is None or record.reannounced_at <= now_iso(now - wait))
    )


def recover_received(ledger: Ledger, stage: Stage, send: Callable[[str], None], now: datetime) -> Recovery:
    """Announce again every file a dead validator left RECEIVED (see the module's docstring); count what stays.
    `send` puts one message body on the stage's ingest queue."""
    found = [r for r in ledger.received_since(now_iso(now - LOOKBACK)) if overdue(r, stage, now)]
    announced = []
    for record in found:
        # counted first: of two ticks at once only one announces; a lost message is announced again later
        if announce_again(record, stage, now) and ledger.mark_reannounced(record, now):
            send(s3_notification(record.bucket, record.key, record.version_id))
            announced.append(record.file_id)
            log.warning("announced again: %s, RECEIVED since %s", record.file_id, record.received_at)
    return Recovery(tuple(announced), len(found))


def queue_sender(stage: Stage) -> Callable[[str], None]:
    """A `send` to the stage's ingest queue (its URL looked up on first use)."""
    from chalicelib.aws import ClientSettings, client

    url: list[str] = []

    def send(body: str) -> None:
        sqs = client("sqs", ClientSettings.for_stage(stage))
        url[:] = url or [sqs.get_queue_url(QueueName=stage.ingest_queue)["QueueUrl"]]
        sqs.send_message(QueueUrl=url[0], MessageBody=body)

    return send
