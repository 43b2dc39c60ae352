"""Media files (snapshots, clips, badge evidence) addressed by their SHA-256.

A file has one row in the ``media`` table and its bytes in an object store (``central.store.objects``): the
media folder, ``<root>/<sha256[:2]>/<sha256>``, by default, or an S3 bucket (``[media] s3_endpoint``). The same
bytes sent twice are stored once, so a retried upload never duplicates anything. A name that is not a SHA-256
is never turned into a path or key: the web page passes user-supplied names straight to ``path()``/``read()``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from kuzet.central.store import portable
from kuzet.central.store.objects import (
    LocalObjects,
    ObjectMismatch,
    ObjectRead,
    ObjectStore,
    open_objects,
)
from kuzet.shared import timeutil

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A file that cannot be written for these reasons is the media disk's fault, not the file's.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class MediaUnavailable(Exception):
    """The media folder cannot take a file now (full, over quota, failing, read-only). Whatever was to be stored
    must be kept elsewhere and written again later (``ingest.media_retry`` for snapshots; the spool for clips)."""


@contextlib.contextmanager
def _store_errors():
    """A disk's failure (full, failing, read-only) or an object store's (unreachable, refusing) becomes
    ``MediaUnavailable``: what was to be stored is kept and written again later."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_ERRNOS:
            raise MediaUnavailable(f"media folder {exc.filename or ''}: {exc.strerror}") from exc
        raise
    except ObjectMismatch:
        raise
    except Exception as exc:
        if _is_object_store_error(exc):
            raise MediaUnavailable(f"object store: {exc}") from exc
        raise


def _is_object_store_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("botocore", "boto3", "urllib3"))


class MediaStore:
    def __init__(
        self,
        db: sqlite_utils.Database | Callable[[], sqlite_utils.Database],
        root: Path,
        objects: ObjectStore | None = None,
    ):
        # SQLite connections cannot cross threads: pass ``Central.db`` (a callable giving each thread its own
        # connection) when ingest and web request threads share one store; a Database is fine in one thread.
        # ``objects``: where the bytes go (``central.store.objects``); the media folder ``root`` by default.
        self._db = db if callable(db) else (lambda: db)
        self.root = Path(root)
        self.objects = objects if objects is not None else LocalObjects(self.root)

    @classmethod
    def for_central(cls, central) -> MediaStore:
        """The media store ``[media]`` selects for this central: its media folder or an S3 bucket."""
        objects = open_objects(central.config.media, central.media_dir, central.data_dir)
        return cls(central.db, central.media_dir, objects)

    def put(
        self,
        data: bytes,
        *,
        kind: str,
        content_type: str,
        device: str,
        event_id: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> str:
        """Store ``data`` (idempotent) and return its SHA-256."""
        sha256 = self.put_bytes(data, content_type)
        self._record_one(media_row(sha256, len(data), kind, content_type, device, event_id, width, height))
        return sha256

    def put_bytes(self, data: bytes, content_type: str) -> str:
        """The bytes alone into the object store, returning their SHA-256; their row is ``record``'s (ingest
        stores a batch's snapshots one by one and writes their rows in one go)."""
        sha256 = hashlib.sha256(data).hexdigest()
        with _store_errors():
            self.objects.put_bytes(sha256, data, content_type)
        return sha256

    @staticmethod
    def record(db, rows: list[dict]) -> None:
        """The rows (``media_row``) of stored bytes, in the caller's transaction on ``db``. The first writer's
        row stands: a repeat of the same bytes changes nothing."""
        if rows:
            names = list(rows[0])
            portable.executemany(
                db,
                f"INSERT INTO media ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) ON CONFLICT DO NOTHING",
                [list(row.values()) for row in rows],
            )

    def _record_one(self, row: dict) -> None:
        db = self._db()
        with portable.transaction(db):
            self.record(db, [row])

    def adopt(
        self,
        src: Path,
        sha256: str,
        *,
        kind: str,
        content_type: str,
        device: str,
        event_id: str | None = None,
    ) -> str:
        """Move an already verified file (a reassembled clip) into the store; ``src`` is gone afterwards."""
        if not _SHA256.match(sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 hex digest")
        src = Path(src)
        size = src.stat().st_size
        with _store_errors():
            self.objects.put_file(sha256, src, content_type)
        self._record_one(media_row(sha256, size, kind, content_type, device, event_id, None, None))
        return sha256

    def size(self, sha256: str) -> int | None:
        """The size of a stored object; None when it is unknown or gone."""
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            return None
        with _store_errors():
            return self.objects.size(sha256)

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> ObjectRead | None:
        """Bytes ``start``..``end`` of a stored object, streamed; None when it is unknown or gone."""
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            return None
        if not self._known(sha256):
            return None
        with _store_errors():
            return self.objects.read(sha256, start, end)

    def path(self, sha256: str) -> Path | None:
        """The file holding ``sha256``, or None when it is unknown, gone, not a SHA-256 at all, or kept in an
        object store rather than the media folder (``read`` serves both)."""
        if (
            not isinstance(sha256, str)
            or not _SHA256.match(sha256)
            or not isinstance(self.objects, LocalObjects)
        ):
            return None
        if not self._known(sha256):
            return None
        target = self.objects.file(sha256)
        return target if target.is_file() else None

    def latest_snapshot(self, event_id: str, max_bytes: int) -> bytes | None:
        """The bytes of the event's newest snapshot, or None if it has none, it is bigger than ``max_bytes``
        or its file cannot be read (logged)."""
        row = portable.execute(
            self._db(),
            "select path, size, sha256 from media where event_id = ? and kind = 'snapshot'"
            # the event's own device's: never a picture another device sent naming the event
            " and device = coalesce((select device from events where event_id = ?), device)"
            " order by created_at desc limit 1",
            [event_id, event_id],
        ).fetchone()
        if row is None or (row[1] or 0) > max_bytes:
            return None
        try:
            with _store_errors():  # the row names it: no second look in the media table (``read`` does one)
                data = self.objects.get(row[2])
        except (OSError, MediaUnavailable) as exc:
            log.warning("media: snapshot of %s unreadable: %s", event_id, exc)
            return None
        if data is None:
            log.warning("media: snapshot %s of %s is gone from the store", row[2], event_id)
            return None
        if hashlib.sha256(data).hexdigest() != row[2]:  # altered on disk: never sent on as evidence
            log.error("media: snapshot %s of %s does not match its SHA-256; not sent", row[2], event_id)
            return None
        return data

    def _known(self, sha256: str) -> bool:
        return (
            portable.execute(self._db(), "SELECT 1 FROM media WHERE sha256 = ?", [sha256]).fetchone()
            is not None
        )


def media_row(sha256, size, kind, content_type, device, event_id, width, height) -> dict:
    return {
        "sha256": sha256,
        "kind": kind,
        "content_type": content_type,
        "size": size,
        "path": str(Path(sha256[:2]) / sha256),
        "created_at": timeutil.now_wire(),
        "event_id": event_id,
        "device": device,
        "width": width,
        "height": height,
    }
