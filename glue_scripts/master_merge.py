"""Glue job: bring the curated/ (gold) tables up to date with processed/: the groups the new data touched, merged;
or every table rebuilt whole (`--rebuild yes`, what `lakehouse curated rebuild` runs). `--forget PREFIX` first deletes
the processed/ rows whose key starts with PREFIX (`lakehouse smoke`'s cleanup); with it alone, curated/ is left as
it is."""

from typing import Any

from lakehouse_etl import curated, entry
from lakehouse_etl.forget import forget as forget_rows


def work(job: Any, rebuild: str | None, forget: str | None = None) -> list[Any]:
    forgotten = forget_rows(job, forget) if forget is not None else []
    if forget is not None and rebuild is None:
        return forgotten
    return [*forgotten, *curated.run(job, rebuild=rebuild is not None)]


if __name__ == "__main__":
    entry.main(work, optional=["rebuild", "forget"])
