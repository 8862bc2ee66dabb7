"""Glue job: merge the pending VALID clickstream files into processed/clickstream (Delta)."""

from lakehouse_etl import entry, processed

if __name__ == "__main__":
    entry.main(lambda job: processed.run(job, "clickstream"))
