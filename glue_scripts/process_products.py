"""Glue job: merge the pending VALID products files into processed/products (Delta)."""

from lakehouse_etl import entry, processed

if __name__ == "__main__":
    entry.main(lambda job: processed.run(job, "products"))
