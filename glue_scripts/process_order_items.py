"""Glue job: merge the pending VALID order_items files into processed/order_items (Delta)."""

from lakehouse_etl import entry, processed

if __name__ == "__main__":
    entry.main(lambda job: processed.run(job, "order_items"))
