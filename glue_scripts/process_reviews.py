"""Glue job: merge reviews files into processed/reviews: a pipeline run's batch (--batch N), or all pending."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.process_dataset("reviews")
