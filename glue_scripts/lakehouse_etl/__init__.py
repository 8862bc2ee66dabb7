"""The ETL core shared by every Glue job entry point in glue_scripts/ (and by the local stage).

Driven by the dataset contracts: DuckDB types and checks each batch (SQL that also reads as Spark/Trino
SQL), delta-rs merges it into processed/<dataset>, and the master merge builds curated/ from processed/.
Heavy libraries (pyarrow, duckdb, deltalake) are imported here freely: this package never runs in a Lambda.
"""
