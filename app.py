"""Serverless Lakehouse: every Lambda, schedule and route. Thin: decode the event, call chalicelib, answer."""

from __future__ import annotations

import json
import logging
import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from chalice import Chalice

from chalicelib import runtime
from chalicelib.ingest import refs_from_notification

app = Chalice(app_name="serverless-lakehouse")
logger = Logger(service="lakehouse")
logging.getLogger("chalicelib")
copy_config_to_registered_loggers(source_logger=logger, include={"chalicelib"})  # JSON logs, same correlation id

METRICS_NAMESPACE = "ServerlessLakehouse"
INGEST_QUEUE = os.environ.get("LAKEHOUSE_INGEST_QUEUE", "lakehouse-local-ingest")


class BatchFailed(Exception):
    """Some records of an SQS batch failed; the whole batch is retried (finished records are no-ops)."""


@app.on_sqs_message(queue=INGEST_QUEUE, batch_size=10, name="validate")
def validate(event):
    """S3 ObjectCreated notifications (through the ingest queue) -> validated, de-duplicated ledger entries."""
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    ingestor = runtime.ingestor()
    failures = []
    for message in SQSEvent(event.to_dict()).records:
        logger.set_correlation_id(message.message_id)
        try:
            for ref in refs_from_notification(json.loads(message.body)):
                record = ingestor.ingest(ref)
                if record is not None:
                    logger.info("file ingested", extra=record.public())
                    with single_metric(
                        name=f"Files{record.status.title()}",
                        unit=MetricUnit.Count,
                        value=1,
                        namespace=METRICS_NAMESPACE,
                    ) as metric:
                        metric.add_dimension(name="dataset", value=record.dataset or "none")
        except Exception as exc:  # keep going: one bad record must not hold up the others
            logger.exception("record failed")
            failures.append(f"{message.message_id}: {exc}")
    if failures:
        # Chalice's SQS event source cannot report partial batch failures, so fail the batch; the ledger
        # makes the records that did finish no-ops when the batch is delivered again.
        raise BatchFailed(f"{len(failures)} record(s) failed: {failures}")
    return {"processed": len(event.to_dict().get("Records", []))}
