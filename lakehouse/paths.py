"""Where the local stage keeps its state on this machine: `LAKEHOUSE_HOME`, by default `.lakehouse/` in the project."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("LAKEHOUSE_HOME", PROJECT_DIR / ".lakehouse"))
CACHE_DIR = STATE_DIR / "cache"  # local copies of the lake's Parquet files for DuckDB (lakehouse_etl/file_cache.py)
