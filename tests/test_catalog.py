"""The Glue Data Catalog for Athena: raw tables with partition projection, native Delta tables for processed/
and curated/, registered again without change when repeated; a crawler catalogues a new column set."""

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


def crawl(services, name):
    """Start the crawler and poll it until READY, as the state machine does; its last crawl."""
    services.start_crawler(name)
    while (crawler := services.get_crawler(name)["Crawler"])["State"] != "READY":
        pass
    return crawler["LastCrawl"]


def test_a_crawl_catalogues_a_new_column_set_in_a_folder_it_crawled_before(provisioned, settings, stage):
    """products (CSV or JSON lines) is catalogued by its crawler. A file with another column set in an ingest_date=
    folder crawled before is read, and its new column added, none dropped, whatever files are left (raw files are
    archived once processed). With CRAWL_NEW_FOLDERS_ONLY and UpdateBehavior LOG it was never read (AWS Glue docs,
    "Scheduling incremental crawls"), while the run recorded the layout as crawled."""
    from lakehouse.orchestration import LocalServices

    services = LocalServices(settings, stage, provisioned, invoke=None, app_name="lakehouse")
    s3, name, folder = provisioned.s3, crawler_name(stage, "products"), "raw/products/ingest_date=2026-12-01/"
    s3.put_object(Bucket=stage.bucket, Key=f"{folder}a.csv", Body=b"product_id,name,department_id,category,price\n")
    assert crawl(services, name) == {"Status": "SUCCEEDED", "Tables": ["raw_products"]}

    def columns():
        table = provisioned.glue.get_table(DatabaseName=stage.glue_database, Name="raw_products")["Table"]
        return [c["Name"] for c in table["StorageDescriptor"]["Columns"]]

    assert columns() == ["product_id", "name", "department_id", "category", "price"]
    s3.delete_object(Bucket=stage.bucket, Key=f"{folder}a.csv")  # processed and archived
    line = b'{"product_id": "p2", "name": "n", "department_id": 1, "category": "toys", "price": 2, "updated_at": null}'
    s3.put_object(Bucket=stage.bucket, Key=f"{folder}b.jsonl", Body=line + b"\n")
    assert crawl(services, name) == {"Status": "SUCCEEDED", "Tables": ["raw_products"]}
    assert columns() == ["product_id", "name", "department_id", "category", "price", "updated_at"]


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
