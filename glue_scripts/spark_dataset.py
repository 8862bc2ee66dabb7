"""Glue Spark job of every dataset (`--dataset NAME`): its batch merged into processed/<dataset> by Spark, for
batches past one node; the arguments of process_dataset.py (`--batch N`, `--rollback N`)."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.spark_dataset()
