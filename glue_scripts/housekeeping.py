"""Glue job: compact small files and VACUUM every processed/ and curated/ table (30 days of time travel kept)."""

from typing import Any

from lakehouse_etl import curated, delta, entry
from lakehouse_etl.processed import Job


def run(job: Job) -> list[dict[str, Any]]:
    uris = [job.lake.processed(name) for name in job.settings.datasets]
    uris += [job.lake.curated(name) for name in curated.CURATED_SQL]
    return [delta.housekeeping(uri, job.lake.storage_options) for uri in uris]


if __name__ == "__main__":
    entry.main(run)
