"""The local stage's data, kept on disk across `lakehouse down` and `up`, and across a kill.

moto keeps every service in memory and has no persistence of its own (getmoto/moto#9755), so this is written by
hand, as the moto maintainers suggest (getmoto/moto#1069): the stage process pickles moto's backends of the
services that hold data (S3: the lake, every object version; DynamoDB: the ledger; Glue: the catalog) under
`.lakehouse/snapshot/`. Everything else (queues, topics, roles, the state machine) is provisioned again by `up`,
which then re-announces raw files the ledger never saw (their queue messages were in memory). The executions of
the local state machine are files already.

A snapshot is taken by `down` (a clean one) and every LAKEHOUSE_SNAPSHOT_SECONDS while something changed, with
the services' requests held for the moment it takes. Its pickle is written under its own checksum and the manifest
naming it is replaced atomically after, so a kill at any point leaves the previous snapshot whole. Every change
acknowledged after it is in the journal (lakehouse/journal.py): a stage killed without `down` comes back as its
last snapshot with the journal replayed on top, and says so, naming any change it could not apply again. A
snapshot from another format or moto version, or one whose checksum fails, is refused with what to do and left as
it is.
"""

from __future__ import annotations

import copyreg
import hashlib
import json
import os
import pickle
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.errors import LocalStageError
from lakehouse.journal import PREFIX, Journal, generations, records, replay

FORMAT = 1  # of the files below; a snapshot of another format is refused, never half-read
SERVICES = ("s3", "dynamodb", "glue")  # the backends that hold data; the rest is provisioned again by `up`
MANIFEST = "manifest.json"


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def _backends() -> dict[str, Any]:
    from moto.dynamodb.models import dynamodb_backends
    from moto.glue.models import glue_backends
    from moto.s3.models import s3_backends

    return {"s3": s3_backends, "dynamodb": dynamodb_backends, "glue": glue_backends}


def _rebuild_key_store(items: list[tuple[str, list[Any]]]) -> Any:
    from moto.s3.utils import _VersionedKeyStore

    store = _VersionedKeyStore()
    for key, versions in items:
        dict.__setitem__(store, key, versions)
    return store


def _register_picklers() -> None:
    """moto's S3 key store is a dict whose items() show only each key's newest version: pickled as a dict it would
    lose the older ones. It is pickled by its whole lists of versions instead."""
    from moto.s3.utils import _VersionedKeyStore

    copyreg.pickle(_VersionedKeyStore, lambda store: (_rebuild_key_store, (list(dict.items(store)),)))


class Gate:
    """Requests to the snapshotted services share it; a snapshot takes it alone (a readers-writer lock: none in
    the standard library)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self.changes = 0  # requests that may have changed something since the last snapshot

    @contextmanager
    def shared(self, changes: bool) -> Any:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
            self.changes += changes
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Any:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


_READS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Search")


def request_service(environ: dict[str, Any]) -> tuple[str, bool]:
    """The service a request is for (from its SigV4 credential scope) and whether it may change something."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    service = scope[3] if len(scope) > 3 else ""
    operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
    reads = environ.get("REQUEST_METHOD") in ("GET", "HEAD") or operation.startswith(_READS)
    return service, not reads


_saving = threading.Lock()  # one snapshot at a time (the periodic one and `down`'s)


def save(folder: Path, gate: Gate, *, clean: bool, journal: Journal | None = None) -> dict[str, Any]:
    """Write a snapshot of the services' backends; returns its manifest. The journal starts a new file with it,
    and the files before are deleted once the snapshot holds what they held."""
    with _saving:
        return _save(folder, gate, clean=clean, journal=journal)


def _save(folder: Path, gate: Gate, *, clean: bool, journal: Journal | None) -> dict[str, Any]:
    _register_picklers()
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "state.partial"
    with gate.alone():
        changes = gate.changes
        with partial.open("wb") as file:
            pickle.dump({name: dict(b) for name, b in _backends().items()}, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        counts = _counts()
        gate.changes -= changes
        generation = journal.rotate() if journal else None  # changes from here on go to the new file
    digest = _sha256(partial)
    state = folder / f"state-{digest[:16]}.pickle"
    os.replace(partial, state)
    manifest = {
        "format": FORMAT,
        "moto": _moto_version(),
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "clean": clean,
        "state": state.name,
        "sha256": digest,
        "bytes": state.stat().st_size,
        "counts": counts,
        "journal": generation,  # replayed from this generation on
    }
    _write_atomically(folder / MANIFEST, json.dumps(manifest, indent=2))
    for old in folder.glob("state-*.pickle"):
        if old != state:
            old.unlink()
    if journal and generation is not None:
        journal.drop_before(generation)
    return manifest


def load(folder: Path) -> dict[str, Any] | None:
    """Put the snapshot's backends in place of moto's (empty) ones; its manifest, or None if there is none. A
    snapshot this code cannot read is refused whole, before anything is changed, and left on disk."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    discard = f"`lakehouse down --discard` forgets it (or move {folder} away to keep it)"
    try:
        manifest = json.loads(path.read_text())
        made = (manifest["format"], manifest["moto"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalStageError(f"the local stage's snapshot in {folder} is unreadable ({exc}): {discard}") from None
    if made != (FORMAT, _moto_version()):
        raise LocalStageError(
            f"the local stage's snapshot in {folder} was made by another version (format {made[0]}, moto {made[1]}; "
            f"this one reads format {FORMAT} of moto {_moto_version()}): {discard}"
        )
    state = folder / str(manifest["state"])
    if not state.exists() or _sha256(state) != manifest["sha256"]:
        raise LocalStageError(f"the local stage's snapshot {state} is missing or corrupt (checksum): {discard}")
    _register_picklers()
    with state.open("rb") as file:
        saved = pickle.load(file)
    for name, live in _backends().items():
        live.clear()
        live.update(saved.get(name, {}))
    return dict(manifest)


def restore(folder: Path, app: Any) -> dict[str, Any]:
    """The last snapshot put in place (`load`), then the journal's changes since replayed through moto's `app`.
    Returns the manifest (None: no snapshot), how many changes were replayed, what could not be, and the journal
    generation to write next (a new file: one a kill cut short is never appended to)."""
    manifest = load(folder)
    since = int((manifest or {}).get("journal") or 0)
    found = records(folder, since)
    failed = replay(app, found)
    return {
        "manifest": manifest,
        "replayed": len(found),
        "failed": failed,
        "next_journal": max([since - 1, *generations(folder)]) + 1,
    }


def kept(folder: Path) -> bool:
    """Whether `folder` holds a snapshot or a journal (good or not: `restore` judges them)."""
    return (folder / MANIFEST).exists() or bool(generations(folder))


def discard(folder: Path) -> bool:
    """Forget the snapshot and the journal; whether there was either."""
    found = kept(folder)
    for path in [*folder.glob("state*"), *folder.glob(f"{PREFIX}*"), folder / MANIFEST]:
        path.unlink(missing_ok=True)
    return found


def keep_saving(folder: Path, gate: Gate, stop: threading.Event, every: float, journal: Journal | None) -> None:
    """Snapshot every `every` seconds while something changed: the journal a restore replays stays that short."""
    while not stop.wait(every):
        if gate.changes:
            try:
                save(folder, gate, clean=False, journal=journal)
            except Exception as exc:  # the next round tries again; a clean `down` says if it still fails
                print(f"snapshot: {type(exc).__name__}: {exc}", flush=True)


def _counts() -> dict[str, int]:
    """What the snapshot holds, counted (the restore report and the tests compare them)."""
    backends = _backends()
    versions = tables = items = 0
    for account in backends["s3"].values():
        for backend in account.values():
            for bucket in backend.buckets.values():
                versions += sum(len(v) for v in dict.values(bucket.keys))
    for account in backends["dynamodb"].values():
        for backend in account.values():
            for table in backend.tables.values():
                tables += 1
                items += len(table)
    return {"object_versions": versions, "tables": tables, "items": items}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the rename itself survives a power loss
    finally:
        os.close(descriptor)
