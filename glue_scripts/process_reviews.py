"""Glue job: merge the pending VALID reviews files into processed/reviews (Delta)."""

from lakehouse_etl import entry, processed

if __name__ == "__main__":
    entry.main(lambda job: processed.run(job, "reviews"))
