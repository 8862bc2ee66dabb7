"""Glue job: merge the pending VALID orders files into processed/orders (Delta)."""

from lakehouse_etl import entry, processed

if __name__ == "__main__":
    entry.main(lambda job: processed.run(job, "orders"))
