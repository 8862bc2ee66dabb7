"""Glue job: bring the curated/ (gold) tables up to date with processed/: the groups the new data touched, merged;
or every table rebuilt whole (`--rebuild yes`, what `lakehouse curated rebuild` runs)."""

from typing import Any

from lakehouse_etl import curated, entry


def work(job: Any, rebuild: str | None) -> list[curated.CuratedReport]:
    return curated.run(job, rebuild=rebuild is not None)


if __name__ == "__main__":
    entry.main(work, optional=["rebuild"])
