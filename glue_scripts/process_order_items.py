"""Glue job: merge order_items files into processed/order_items: a pipeline run's batch (--batch N), or all pending."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.process_dataset("order_items")
