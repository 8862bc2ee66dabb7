"""The Glue Data Catalog for Athena: raw tables with partition projection, native Delta tables for processed/
and curated/, registered again without change when repeated; crawlers never rewrite a table."""

from __future__ import annotations

from chalicelib.stage.catalog import delta_table, refresh
from deploy.provision import crawler_name


def tables(clients, stage):
    pages = clients.glue.get_paginator("get_tables").paginate(DatabaseName=stage.glue_database)
    return {t["Name"]: t for page in pages for t in page["TableList"]}


def test_refresh_registers_raw_processed_and_curated_tables(provisioned, settings, stage):
    s3 = provisioned.s3
    s3.put_object(Bucket=stage.bucket, Key="processed/orders/_delta_log/00000000000000000000.json", Body=b"{}")
    s3.put_object(Bucket=stage.bucket, Key="processed/customers/part-0.parquet", Body=b"x")  # no log: not a table
    s3.put_object(Bucket=stage.bucket, Key="curated/customer_summary/_delta_log/00000000000000000000.json", Body=b"{}")

    names = refresh(settings, stage, s3, provisioned.glue)
    single_format = sorted(f"raw_{d}" for d, c in settings.datasets.items() if len(c.formats) == 1)
    assert names == [*single_format, "processed_orders", "curated_customer_summary"]
    assert "raw_products" not in names  # CSV or JSON lines: one SerDe cannot read both; the crawler's table stays

    catalog = tables(provisioned, stage)
    raw = catalog["raw_orders"]
    params = raw["Parameters"]
    assert params["projection.enabled"] == "true" and params["projection.ingest_date.type"] == "date"
    assert params["storage.location.template"] == f"s3://{stage.bucket}/raw/orders/ingest_date=${{ingest_date}}/"
    assert params["skip.header.line.count"] == "1"
    assert raw["PartitionKeys"] == [{"Name": "ingest_date", "Type": "string"}]
    assert [c["Name"] for c in raw["StorageDescriptor"]["Columns"]] == list(settings.datasets["orders"].column_names)
    assert raw["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("OpenCSVSerde")
    clicks = catalog["raw_clickstream"]
    assert clicks["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert catalog["processed_orders"]["Parameters"]["table_type"] == "DELTA"
    assert catalog["curated_customer_summary"]["StorageDescriptor"]["Location"] == (
        f"s3://{stage.bucket}/curated/customer_summary/"
    )
    assert refresh(settings, stage, s3, provisioned.glue) == names  # repeated: updated in place, nothing new
    assert tables(provisioned, stage).keys() == catalog.keys()


def test_crawlers_add_but_never_rewrite_tables(provisioned, settings, stage):
    crawler = provisioned.glue.get_crawler(Name=crawler_name(stage, "orders"))["Crawler"]
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
    assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"}


def test_a_refresh_writes_only_tables_that_changed_and_never_archives_a_version(provisioned, settings, stage):
    """Glue archives a version at every UpdateTable unless SkipArchive, and refuses updates past its quota of
    versions per table: a refresh after every run must not write what did not change."""
    s3, glue = provisioned.s3, provisioned.glue
    s3.put_object(Bucket=stage.bucket, Key="processed/orders/_delta_log/00000000000000000000.json", Body=b"{}")
    refresh(settings, stage, s3, glue)
    calls: list[tuple[str, dict]] = []
    glue.meta.events.register(
        "provide-client-params.glue.*", lambda params, model, **_: calls.append((model.name, params))
    )
    refresh(settings, stage, s3, glue)
    assert [name for name, _ in calls if name in ("UpdateTable", "CreateTable")] == []  # nothing changed
    changed = delta_table("processed_orders", f"s3://{stage.bucket}/processed/orders/")
    glue.update_table(DatabaseName=stage.glue_database, TableInput={**changed, "Parameters": {"table_type": "HIVE"}})
    calls.clear()
    refresh(settings, stage, s3, glue)
    updates = [params for name, params in calls if name == "UpdateTable"]
    assert [u["TableInput"]["Name"] for u in updates] == ["processed_orders"] and updates[0]["SkipArchive"] is True
    assert tables(provisioned, stage)["processed_orders"]["Parameters"]["table_type"] == "DELTA"
