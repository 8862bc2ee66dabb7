"""The ledger in memory: the same flow over a dict, for fast tests."""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.errors import LedgerError
from chalicelib.ledger.base import ITEM_BYTES, Ledger, item_bytes


def _fits(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB refuses an item over 400 KB (ValidationException); so does its twin."""
    if item_bytes(item) > ITEM_BYTES:
        raise LedgerError(f"{item['pk']}: Item size has exceeded the maximum allowed size (400 KB)")
    return item


class InMemoryLedger(Ledger):
    """A ledger in a dict; the lock gives it DynamoDB's per-item atomicity."""

    def __init__(self, lease_seconds: int = 960) -> None:
        super().__init__(lease_seconds)
        self.items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _put_if_absent(self, item: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            if item["pk"] in self.items:
                return dict(self.items[item["pk"]])
            self.items[item["pk"]] = _fits(dict(item))
            return None

    def _update_if(self, pk: str, updates: dict[str, Any], expect: dict[str, Any]) -> bool:
        with self._lock:
            item = self.items.get(pk)
            if item is None or any(item.get(k) != v for k, v in expect.items()):
                return False
            updated = {k: v for k, v in {**item, **updates}.items() if v is not None}
            self.items[pk] = _fits(updated)
            return True

    def _delete_if(self, pk: str, expect: dict[str, Any]) -> bool:
        with self._lock:
            item = self.items.get(pk)
            if item is None or any(item.get(k) != v for k, v in expect.items()):
                return False
            del self.items[pk]
            return True

    def _get(self, pk: str) -> dict[str, Any] | None:
        with self._lock:
            item = self.items.get(pk)
            return None if item is None else dict(item)

    def _newest(self, kind: str, limit: int | None) -> list[dict[str, Any]]:
        with self._lock:
            files = sorted(
                (dict(i) for i in self.items.values() if i["kind"] == kind),
                key=lambda i: i["received_at"],
                reverse=True,
            )
        return files[:limit] if limit else files

    def _statuses_since(self, kind: str, since: str) -> list[str]:
        with self._lock:
            return [i["status"] for i in self.items.values() if i["kind"] == kind and i["received_at"] >= since]

    def _pending(self, dataset: str, limit: int | None) -> list[dict[str, Any]]:
        with self._lock:
            files = sorted(
                (dict(i) for i in self.items.values() if i.get("pending") == dataset), key=lambda i: i["received_at"]
            )
        return files[:limit] if limit else files

    def _received_since(self, since: str) -> list[str]:
        with self._lock:
            return [
                pk
                for pk, i in self.items.items()
                if i["kind"] == "file" and i["status"] == "RECEIVED" and i["received_at"] >= since
            ]
