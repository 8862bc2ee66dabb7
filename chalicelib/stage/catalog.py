"""The stage's tables in the Glue Data Catalog, for Athena: what the RefreshTables step (and the quality gate,
before it queries) registers.

- `processed_<dataset>` and `curated_<table>`: native Delta tables (`table_type = DELTA`): Athena reads the
  schema and the files from the Delta log itself, so nothing is re-registered when a table changes and no
  symlink manifest is written. The names are those of the local stage's DuckDB views: one SQL text runs on both.
- `raw_<dataset>`: the raw files as they came (every column a string), partitioned by the `ingest_date=`
  folder `lakehouse drop` writes, with partition projection: Athena computes the partitions from the table's
  properties, so no crawler run or `MSCK REPAIR TABLE` is needed for a new day. Its columns are the contract's, so
  every column set the validator accepts is catalogued before its first file lands, and no crawl of these datasets
  is run (`catalogued_from_contract`). Only datasets with one file format get one (a table has one SerDe, and a
  folder of CSV and JSON lines files cannot be split between two tables); crawlers catalogue the others, updating
  their table with every new column (docs/architecture.md, "Who writes the catalog").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.aws import error_code
from chalicelib.config import Contract, Settings, Stage

if TYPE_CHECKING:
    from types_boto3_glue import GlueClient
    from types_boto3_glue.type_defs import SerDeInfoTypeDef, TableInputTypeDef
    from types_boto3_s3 import S3Client

RAW_PARTITION = "ingest_date"
RAW_DAYS = "NOW-1YEARS,NOW"  # raw files are archived once processed: a year back covers what still waits there


def delta_table(name: str, location: str) -> TableInputTypeDef:
    """A Glue table that Athena reads as a native Delta table."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "DELTA", "EXTERNAL": "TRUE", "classification": "delta"},
        "StorageDescriptor": {"Location": location},
    }


def catalogued_from_contract(contract: Contract) -> bool:
    """Whether the dataset's raw table is written from its contract (`raw_table`) rather than by a crawler."""
    return len(contract.formats) == 1


def raw_table(settings: Settings, stage: Stage, contract: Contract) -> TableInputTypeDef | None:
    """The raw zone's table of a single-format dataset, with partition projection on `ingest_date`."""
    if not catalogued_from_contract(contract):
        return None
    location = f"s3://{stage.bucket}/{settings.zones.raw}{contract.name}/"
    serde: SerDeInfoTypeDef
    if contract.formats[0] == "csv":
        serde = {
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde",
            "Parameters": {"separatorChar": contract.delimiter, "quoteChar": '"', "escapeChar": "\\"},
        }
        extra = {"classification": "csv", "skip.header.line.count": "1"}
    else:
        serde = {
            "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
            "Parameters": {"ignore.malformed.json": "true"},
        }
        extra = {"classification": "json"}
    return {
        "Name": f"raw_{contract.name}",
        "TableType": "EXTERNAL_TABLE",
        "Description": (
            f"raw files of {contract.name} as they came (columns by position in contract order, all strings; "
            "the ledger's raw_table = false marks files whose header orders them otherwise)"
        ),
        "PartitionKeys": [{"Name": RAW_PARTITION, "Type": "string"}],
        "Parameters": {
            "EXTERNAL": "TRUE",
            **extra,
            "projection.enabled": "true",
            f"projection.{RAW_PARTITION}.type": "date",
            f"projection.{RAW_PARTITION}.format": "yyyy-MM-dd",
            f"projection.{RAW_PARTITION}.range": RAW_DAYS,
            f"projection.{RAW_PARTITION}.interval": "1",
            f"projection.{RAW_PARTITION}.interval.unit": "DAYS",
            "storage.location.template": f"{location}{RAW_PARTITION}=${{{RAW_PARTITION}}}/",
        },
        "StorageDescriptor": {
            "Location": location,
            "Columns": [{"Name": c.name, "Type": "string"} for c in contract.columns],
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "SerdeInfo": serde,
        },
    }


def raw_table_shows(contract: Contract, fmt: str | None, columns: tuple[str, ...]) -> bool | None:
    """Whether `raw_<dataset>` shows a valid file's rows right; None where the dataset has no such table. Its CSV
    SerDe maps fields by position, in contract order (no Hive CSV SerDe reads the header), so a CSV whose header
    orders the columns otherwise, or leaves an optional one out, reads into the wrong columns there (the ETL,
    processed/ and curated/ map by name and are right). JSON lines map by name."""
    if len(contract.formats) != 1:
        return None
    return fmt != "csv" or columns == contract.column_names


def table_differences(declared: Any, live: Any, path: str = "") -> list[str]:
    """Where the live table differs from the declared TableInput, by dotted path: only what the declaration says
    is compared (GetTable adds its own fields: CreateTime, a column's extra keys ...)."""
    if isinstance(declared, dict):
        live = live if isinstance(live, dict) else {}
        return [d for k, v in declared.items() for d in table_differences(v, live.get(k), f"{path}.{k}".lstrip("."))]
    if isinstance(declared, list):
        if not isinstance(live, list) or len(live) != len(declared):
            return [path]
        return [
            d
            for i, (v, w) in enumerate(zip(declared, live, strict=True))
            for d in table_differences(v, w, f"{path}[{i}]")
        ]
    return [] if declared == live else [path]


def put_table(glue: GlueClient, database: str, table: TableInputTypeDef) -> str:
    """Create the table, update it when it differs from its declaration, or leave it: "created", "updated" or
    "unchanged". Every UpdateTable archives a table version unless told not to, and Glue refuses updates once a
    table has too many (AWS Glue API, UpdateTable `SkipArchive`; Glue service quotas, table versions per table):
    a refresh after every pipeline run must not write what did not change."""
    try:
        live = glue.get_table(DatabaseName=database, Name=table["Name"])["Table"]
    except Exception as exc:
        if error_code(exc) != "EntityNotFoundException":
            raise
        glue.create_table(DatabaseName=database, TableInput=table)
        return "created"
    if not table_differences(table, live):
        return "unchanged"
    glue.update_table(DatabaseName=database, TableInput=table, SkipArchive=True)
    return "updated"


def declared_tables(
    settings: Settings, stage: Stage, s3: S3Client | None, zones: tuple[str, ...] = ("raw", "processed", "curated")
) -> list[TableInputTypeDef]:
    """The tables the stage should have in its Glue database: the raw tables its contracts declare, and a
    Delta table for each processed/curated table in S3 (once it has a log)."""
    tables: list[TableInputTypeDef] = []
    if "raw" in zones:
        tables += [t for c in settings.datasets.values() if (t := raw_table(settings, stage, c)) is not None]
    for label in ("processed", "curated"):
        if label not in zones:
            continue
        if s3 is None:
            raise ValueError(f"the {label} tables are found by listing the bucket: an S3 client is needed")
        zone = getattr(settings.zones, label)
        listing = s3.list_objects_v2(Bucket=stage.bucket, Prefix=zone, Delimiter="/")
        for prefix in (p["Prefix"] for p in listing.get("CommonPrefixes", [])):
            if s3.list_objects_v2(Bucket=stage.bucket, Prefix=f"{prefix}_delta_log/", MaxKeys=1).get("KeyCount"):
                name = f"{label}_{prefix[len(zone) :].strip('/')}"
                tables.append(delta_table(name, f"s3://{stage.bucket}/{prefix}"))
    return tables


def refresh(
    settings: Settings,
    stage: Stage,
    s3: S3Client | None,
    glue: GlueClient,
    zones: tuple[str, ...] = ("raw", "processed", "curated"),
) -> list[str]:
    """Register the stage's declared tables (`declared_tables`); returns their names."""
    tables = declared_tables(settings, stage, s3, zones)
    for table in tables:
        put_table(glue, stage.glue_database, table)
    return [t["Name"] for t in tables]
