"""Ingest: S3 notifications to ledger verdicts (events, the ingestor, the streaming validator)."""
