"""Where the local stage keeps its state on this machine: `LAKEHOUSE_HOME`, by default `.lakehouse/` in the project;
and where the commands read the configuration: `LAKEHOUSE_CONFIG`, by default the project's `config/`."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("LAKEHOUSE_HOME", PROJECT_DIR / ".lakehouse"))
CONFIG_DIR = Path(os.environ.get("LAKEHOUSE_CONFIG", PROJECT_DIR / "config")).absolute()  # the tests: tests/fixtures/
CACHE_DIR = STATE_DIR / "cache"  # local copies of the lake's Parquet files for DuckDB (lakehouse_etl/file_cache.py)
