"""Glue job: merge orders files into processed/orders: a pipeline run's batch (--batch N), or all pending."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.process_dataset("orders")
