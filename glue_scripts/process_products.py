"""Glue job: merge products files into processed/products: a pipeline run's batch (--batch N), or all pending."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.process_dataset("products")
