"""Glue job of a small pipeline run (`--run NAME`): every dataset's batch, the quality gate and curated/, in one
job run (docs/etl.md, "How a run is sized")."""

from lakehouse_etl import entry

if __name__ == "__main__":
    entry.whole_run()
