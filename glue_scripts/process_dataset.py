"""Glue job of every dataset (`--dataset NAME`): merge its files into processed/<dataset>: a pipeline run's batch
(`--batch N`), or all pending; or take a batch that failed the quality gate back out (`--rollback N`)."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.process_dataset()
