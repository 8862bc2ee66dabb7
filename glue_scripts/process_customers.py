"""Glue job: merge the pending VALID customers files into processed/customers (Delta)."""

from lakehouse_etl import entry, processed

if __name__ == "__main__":
    entry.main(lambda job: processed.run(job, "customers"))
