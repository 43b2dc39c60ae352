"""Media files (snapshots, clips, badge evidence) addressed by their SHA-256.

A file lives at ``<root>/<sha256[:2]>/<sha256>`` and has one row in the ``media`` table. The same bytes sent
twice are stored once, so a retried upload never duplicates anything. A name that is not a SHA-256 is never
turned into a path: the web page passes user-supplied names straight to ``path()``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from kuzet.shared import timeutil

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A file that cannot be written for these reasons is the media disk's fault, not the file's.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class MediaUnavailable(Exception):
    """The media folder cannot take a file now (full, over quota, failing, read-only). Whatever was to be stored
    must be kept elsewhere and written again later (``ingest.media_retry`` for snapshots; the spool for clips)."""


@contextlib.contextmanager
def _disk_errors(*leftovers: Path):
    """Remove ``leftovers`` on any failure; a disk's failure becomes ``MediaUnavailable``."""
    try:
        yield
    except BaseException as exc:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            raise MediaUnavailable(f"media folder {exc.filename or ''}: {exc.strerror}") from exc
        raise


class MediaStore:
    def __init__(self, db: sqlite_utils.Database | Callable[[], sqlite_utils.Database], root: Path):
        # SQLite connections cannot cross threads: pass ``Central.db`` (a callable giving each thread its own
        # connection) when ingest and web request threads share one store; a Database is fine in one thread.
        self._db = db if callable(db) else (lambda: db)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _file(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

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
        sha256 = hashlib.sha256(data).hexdigest()
        target = self._file(sha256)
        if not target.exists():
            with _disk_errors():
                target.parent.mkdir(parents=True, exist_ok=True)
                # Write beside the target and rename: a crash never leaves a truncated file under a valid name.
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with _disk_errors(Path(tmp)):
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())  # a full disk says so here, not later with the file named
                os.replace(tmp, target)
        self._record(sha256, len(data), kind, content_type, device, event_id, width, height)
        return sha256

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
        target = self._file(sha256)
        if target.exists():
            src.unlink()
        else:
            with _disk_errors():
                target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, target)
            except OSError:  # another file system: copy beside the target, then rename (src stays on failure)
                tmp = target.with_name(f".incoming-{sha256}")
                with _disk_errors(tmp):
                    shutil.copyfile(src, tmp)
                    with open(tmp, "rb+") as copied:
                        os.fsync(copied.fileno())
                    os.replace(tmp, target)
                src.unlink()
        self._record(sha256, size, kind, content_type, device, event_id, None, None)
        return sha256

    def path(self, sha256: str) -> Path | None:
        """The file holding ``sha256``, or None when it is unknown, gone, or not a SHA-256 at all."""
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            return None
        if not self._db()["media"].count_where("sha256 = ?", [sha256]):
            return None
        target = self._file(sha256)
        return target if target.is_file() else None

    def latest_snapshot(self, event_id: str, max_bytes: int) -> bytes | None:
        """The bytes of the event's newest snapshot, or None if it has none, it is bigger than ``max_bytes``
        or its file cannot be read (logged)."""
        row = (
            self._db()
            .execute(
                "select path, size, sha256 from media where event_id = ? and kind = 'snapshot'"
                # the event's own device's: never a picture another device sent naming the event
                " and device = coalesce((select device from events where event_id = ?), device)"
                " order by created_at desc limit 1",
                [event_id, event_id],
            )
            .fetchone()
        )
        if row is None or (row[1] or 0) > max_bytes:
            return None
        path = Path(row[0])
        if not path.is_absolute():
            path = self.root / path
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("media: snapshot of %s unreadable: %s", event_id, exc)
            return None
        if hashlib.sha256(data).hexdigest() != row[2]:  # altered on disk: never sent on as evidence
            log.error("media: snapshot %s of %s does not match its SHA-256; not sent", row[2], event_id)
            return None
        return data

    def _record(self, sha256, size, kind, content_type, device, event_id, width, height) -> None:
        row = {
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
        # The first writer's row stands: a repeat of the same bytes changes nothing.
        self._db()["media"].insert(row, ignore=True)
