"""The local stage's write-ahead journal: every change to the kept services (lakehouse/snapshot.py's SERVICES),
written to disk before its response leaves moto, and replayed on top of the last snapshot when the stage comes
back. A stage killed without `down` (a power loss, `kill -9`) so comes back with every change it acknowledged.

Hand-written for the reason the snapshot is (moto has no persistence: getmoto/moto#9755). A journal file is a run
of records, each a length, a pickled request with what moto answered, and a CRC-32 of both: a record cut short
by a kill mid-append was never acknowledged, and is where reading stops. A snapshot starts a new journal file
(its generation is in the snapshot's manifest); restoring replays every record from that generation on.

Replaying a request makes moto draw new random ids where the first answer had others: an S3 object's version id
(which the ledger's file ids name) and a multipart upload's id. The replay puts the acknowledged version ids back
on the objects, and maps the upload ids for the requests that follow.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import threading
import zlib
from html import unescape
from pathlib import Path
from typing import Any

PREFIX = "journal-"
_HEAD = struct.Struct(">Q")  # the pickled record's length
_CRC = struct.Struct(">I")


def _path(folder: Path, generation: int) -> Path:
    return folder / f"{PREFIX}{generation:08d}.log"


def generations(folder: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix(PREFIX)) for p in folder.glob(f"{PREFIX}*.log"))


class Journal:
    """Appends records to the current generation's file, each on disk (fdatasync) before `append` returns."""

    def __init__(self, folder: Path, generation: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.generation = folder, generation
        self._lock = threading.Lock()
        self._file = _path(folder, generation).open("ab")

    def append(self, record: dict[str, Any]) -> None:
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._file.write(_HEAD.pack(len(data)) + data + _CRC.pack(zlib.crc32(data)))
            self._file.flush()
            os.fdatasync(self._file.fileno())

    def rotate(self) -> int:
        """Start the next generation (a snapshot was just taken of everything before it); returns it."""
        with self._lock:
            self._file.close()
            self.generation += 1
            self._file = _path(self.folder, self.generation).open("ab")
            return self.generation

    def drop_before(self, generation: int) -> None:
        """Delete the files a snapshot on disk now holds."""
        for old in generations(self.folder):
            if old < generation:
                _path(self.folder, old).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def records(folder: Path, since: int) -> list[dict[str, Any]]:
    """Every whole record of the generations from `since` on, in order; a torn last record is left out."""
    found = []
    for generation in generations(folder):
        if generation < since:
            continue
        data = _path(folder, generation).read_bytes()
        at = 0
        while at + _HEAD.size <= len(data):
            (size,) = _HEAD.unpack_from(data, at)
            body = data[at + _HEAD.size : at + _HEAD.size + size]
            end = at + _HEAD.size + size + _CRC.size
            if len(body) < size or end > len(data) or _CRC.unpack_from(data, end - _CRC.size)[0] != zlib.crc32(body):
                break  # cut short by the kill: never acknowledged
            found.append(pickle.loads(body))
            at = end
    return found


# -- in the moto server -------------------------------------------------------------------------------------
def journaled(app: Any, journal: Journal, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Run one changing request through moto; if moto accepted it, journal it before the answer goes out."""
    body = _body(environ)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # read whole above (werkzeug undid any chunking)
    environ.pop("wsgi.input_terminated", None)
    answer: dict[str, Any] = {}

    def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer.update(status=status, headers=headers)
        return start_response(status, headers, exc_info)

    result = list(app(environ, keep))
    if answer.get("status", "").startswith("2"):
        journal.append(
            {
                "environ": {k: v for k, v in environ.items() if isinstance(v, str)},  # the request as moto saw it
                "body": body,
                "version_id": dict(answer["headers"]).get("x-amz-version-id"),
                "answer": b"".join(result) if _ids_in_answer(environ) else b"",
            }
        )
    return result


def _body(environ: dict[str, Any]) -> bytes:
    """The request's body: its Content-Length in bytes, or to its end when chunked (werkzeug then marks the
    input terminated; reading a socket to its end otherwise would wait for the client to hang up)."""
    if environ.get("wsgi.input_terminated"):
        return bytes(environ["wsgi.input"].read())
    return bytes(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))


def _ids_in_answer(environ: dict[str, Any]) -> bool:
    """Answers whose body holds ids the replay must map: a new multipart upload, a multi-object delete."""
    query = environ.get("QUERY_STRING", "").split("&")
    return environ["REQUEST_METHOD"] == "POST" and ("uploads" in query or "delete" in query)


def replay(app: Any, found: list[dict[str, Any]]) -> list[str]:
    """Apply journal records to moto, in order; returns what could not be applied (one line each)."""
    uploads: dict[str, str] = {}  # acknowledged upload id -> the replay's
    failed = []
    for record in found:
        environ: dict[str, Any] = {
            key: re.sub(r"(?<=uploadId=)[^&]+", lambda m: uploads.get(m.group(0), m.group(0)), value)
            for key, value in record["environ"].items()
        }
        environ.update(
            {
                "wsgi.input": io.BytesIO(record["body"]),
                "wsgi.errors": io.StringIO(),
                "wsgi.version": (1, 0),
                "wsgi.multithread": False,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
        )
        status, headers, result = _call(app, environ)
        path = _text(environ.get("PATH_INFO", ""))
        what = f"{environ['REQUEST_METHOD']} {path}"
        if not status.startswith("2"):
            failed.append(f"{what}: {status} on replay")
            continue
        if b"<UploadId>" in record["answer"]:
            uploads[_tags(record["answer"], "UploadId")[0]] = _tags(result, "UploadId")[0]
        bucket, _, key = path.lstrip("/").partition("/")
        then, now = record["version_id"], headers.get("x-amz-version-id")
        renamed = [(key, then, now)] if then and now and then != now else []
        for was, is_now in zip(_deleted(record["answer"]), _deleted(result), strict=False):  # a multi-object delete
            renamed.append((was[0], was[1], is_now[1]))
        for name, acknowledged, replayed in renamed:
            if not _renumber(bucket, name, replayed, acknowledged):
                failed.append(f"{what}: version {acknowledged} of {name} not made again")
    return failed


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer.update(status=status, headers=dict(headers))

    body = b"".join(app(environ, start_response))
    return answer.get("status", ""), answer.get("headers", {}), body


def _text(wsgi: str) -> str:
    """A WSGI string (the request's bytes read as Latin-1) as the text it is (UTF-8)."""
    return wsgi.encode("latin-1").decode("utf-8", "replace")


def _tags(xml: bytes, name: str) -> list[str]:
    return [m.decode() for m in re.findall(rb"<%s>([^<]*)</%s>" % (name.encode(), name.encode()), xml)]


def _deleted(xml: bytes) -> list[tuple[str, str]]:
    """(key, delete marker version id) of each object a multi-object delete marked deleted."""
    found = []
    for block in re.findall(rb"<Deleted>(.*?)</Deleted>", xml, re.S):
        key, marker = _tags(block, "Key"), _tags(block, "DeleteMarkerVersionId")
        if key and marker:
            found.append((unescape(key[0]), marker[0]))
    return found


def _renumber(bucket_name: str, key: str, replayed: str, acknowledged: str) -> bool:
    """Give the object version (or delete marker) the replay made the version id the first answer named."""
    from moto.s3.models import s3_backends

    for account in s3_backends.values():
        for backend in account.values():
            bucket = backend.buckets.get(bucket_name)
            for version in dict.get(bucket.keys, key, []) if bucket is not None else []:
                if version.version_id == replayed:
                    version._version_id = acknowledged
                    return True
    return False
