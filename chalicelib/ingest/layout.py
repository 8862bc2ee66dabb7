"""What a raw file looks like to a Glue crawler: its layout, recorded with the file when it is accepted.

A crawler only learns something new from a file whose layout it has not seen: another format, another set of
columns, or another folder layout under `raw/<dataset>/` (a crawler makes a partition column of each folder
level). Two files that differ only in their rows or their partition values have the same layout, so the
pipeline crawls a dataset only when one of its batch's files brings a layout no crawl has seen
(`chalicelib.pipeline.crawling`).
"""

from __future__ import annotations

from collections.abc import Iterable


def folder_layout(key: str, dataset_prefix: str) -> str:
    """The folder levels between `raw/<dataset>/` and the file name, values blanked: `ingest_date=*`."""
    levels = key.removeprefix(dataset_prefix).split("/")[:-1]
    return "/".join(f"{level.split('=', 1)[0]}=*" if "=" in level else "*" for level in levels) or "(none)"


def file_layout(key: str, dataset_prefix: str, fmt: str | None, columns: Iterable[str]) -> str:
    """One readable fingerprint of a file's layout: format, columns (sorted) and folder levels.

    Compression is left out: a crawler classifies a gzipped CSV as CSV, with the same schema.
    """
    return f"{fmt}; columns {','.join(sorted(columns))}; folders {folder_layout(key, dataset_prefix)}"
