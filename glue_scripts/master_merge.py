"""Glue job: rebuild the curated/ (gold) tables from processed/."""

from lakehouse_etl import curated, entry

if __name__ == "__main__":
    entry.main(curated.run)
