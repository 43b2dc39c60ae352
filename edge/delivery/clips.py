"""Clip files waiting to be delivered, sent in chunks with a per-clip SHA-256, resent on request, bounded on disk.

A clip is moved into ``<dir>/<clip_id>.<ext>`` with a small JSON sidecar (hash, size, chunk count) and one
outbox row per chunk that refers to it (``ref = "<clip_id>:<index>"``); the chunk message is built when it is
sent. Central asks again with a ``clip_request`` for chunks that arrived bad or never (after a drop), and the
spool queues just those. Delivered clips are kept a while for such requests, then removed; when the spool
exceeds its quota the oldest clips go first (delivered or not) and every drop is counted. Events are never in
here, so the quota can never cost an event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.delivery.outbox import PRIORITY_CLIP, Outbox, Row
from shared import messages, topics
from shared.messages import CLIP_CHUNK_BYTES, ClipChunk, ClipRequest

log = logging.getLogger(__name__)

# WebM is Matroska with VP8/VP9: browsers play it when central serves it as video/x-matroska.
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/x-matroska",
}


@dataclass(frozen=True)
class ClipInfo:
    clip_id: str
    file: str
    sha256: str
    size: int
    count: int
    content_type: str
    purpose: str
    event_id: str | None
    created_at: float


class ClipSpool:
    def __init__(
        self,
        directory: Path,
        outbox: Outbox,
        *,
        site: str,
        device: str,
        max_bytes: int = 2_000_000_000,
        min_free_bytes: int = 0,
        keep_delivered_s: float = 3600.0,
        chunk_bytes: int = CLIP_CHUNK_BYTES,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.outbox = outbox
        self.site, self.device = site, device
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.keep_delivered_s = keep_delivered_s
        self.chunk_bytes = chunk_bytes
        self.topic = topics.up(site, device, "clip")
        self._lock = threading.Lock()
        for leftover in self.dir.iterdir():
            # A crash between moving a clip in and writing its sidecar leaves a file nothing refers to.
            if leftover.suffix == ".tmp" or (
                leftover.suffix in CONTENT_TYPES and not leftover.with_suffix(".json").exists()
            ):
                leftover.unlink()

    # --- adding -------------------------------------------------------------------------------------------

    def add(
        self,
        path: Path,
        *,
        clip_id: str,
        purpose: str = "event",
        event_id: str | None = None,
    ) -> ClipInfo:
        """Move the finished file at ``path`` into the spool and queue all its chunks."""
        path = Path(path)
        content_type = CONTENT_TYPES.get(path.suffix.lower())
        if content_type is None:
            raise ValueError(f"{path}: not a clip format central accepts ({', '.join(CONTENT_TYPES)})")
        digest = hashlib.sha256()
        with path.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
        size = path.stat().st_size
        if size == 0:
            raise ValueError(f"{path}: the clip is empty")
        info = ClipInfo(
            clip_id=clip_id,
            file=f"{clip_id}{path.suffix.lower()}",
            sha256=digest.hexdigest(),
            size=size,
            count=-(-size // self.chunk_bytes),
            content_type=content_type,
            purpose=purpose,
            event_id=event_id,
            created_at=time.time(),
        )
        with self._lock:
            shutil.move(path, self.dir / info.file)
            sidecar = self.dir / f"{clip_id}.json"
            sidecar.with_suffix(".tmp").write_text(json.dumps(info.__dict__))
            sidecar.with_suffix(".tmp").replace(sidecar)
            self._queue(info, range(info.count))
        self.enforce_quota()
        return info

    def _queue(self, info: ClipInfo, indexes) -> int:
        items = []
        for index in indexes:
            ref = f"{info.clip_id}:{index:06d}"
            if not self.outbox.has_ref(ref):
                items.append((self.topic, None, "clip", PRIORITY_CLIP, ref))
        self.outbox.put_many(items)
        return len(items)

    # --- sending ------------------------------------------------------------------------------------------

    def chunk_payload(self, row: Row) -> bytes | None:
        """The outbox publisher's resolver for ``clip`` rows: the chunk message, read from the clip file."""
        clip_id, _, index_text = (row.ref or "").partition(":")
        info = self.info(clip_id)
        if info is None or not index_text.isdigit():
            return None
        index = int(index_text)
        try:
            with (self.dir / info.file).open("rb") as source:
                source.seek(index * self.chunk_bytes)
                data = source.read(self.chunk_bytes)
        except FileNotFoundError:
            return None
        chunk = ClipChunk(
            device=self.device,
            clip_id=clip_id,
            purpose=info.purpose,
            event_id=info.event_id,
            index=index,
            count=info.count,
            size=info.size,
            sha256=info.sha256,
            chunk_sha256=hashlib.sha256(data).hexdigest(),
            content_type=info.content_type,
            data=messages.to_base64(data),
        )
        return messages.encode(chunk)

    def handle_request(self, request: ClipRequest) -> int:
        """Central asks again for some chunks (or all when ``missing`` is empty); returns how many were queued."""
        info = self.info(request.clip_id)
        if info is None:
            log.warning(
                "central asked for clip %s, which is no longer here (dropped or expired)", request.clip_id
            )
            self.outbox.add("clip_requests_unknown")
            return 0
        wanted = [i for i in request.missing if i < info.count] or range(info.count)
        with self._lock:
            queued = self._queue(info, wanted)
        log.info("clip %s: central asked again; %d chunk(s) queued", request.clip_id, queued)
        return queued

    # --- housekeeping -------------------------------------------------------------------------------------

    def info(self, clip_id: str) -> ClipInfo | None:
        try:
            return ClipInfo(**json.loads((self.dir / f"{clip_id}.json").read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def clips(self) -> list[ClipInfo]:
        found = [self.info(p.stem) for p in self.dir.glob("*.json")]
        return sorted((c for c in found if c is not None), key=lambda c: c.created_at)

    def used_bytes(self) -> int:
        return sum(c.size for c in self.clips())

    def enforce_quota(self) -> int:
        """Remove expired delivered clips, then the oldest clips until the spool fits its quota and the disk
        keeps ``min_free_bytes`` free (the outbox's events need room too); returns how many were dropped."""
        dropped = 0
        with self._lock:
            clips = self.clips()
            now = time.time()
            for clip in list(clips):
                delivered = self.outbox.pending_refs(f"{clip.clip_id}:") == 0
                if delivered and now - clip.created_at > self.keep_delivered_s:
                    self._remove(clip)
                    clips.remove(clip)
            used = sum(c.size for c in clips)
            while clips and (used > self.max_bytes or shutil.disk_usage(self.dir).free < self.min_free_bytes):
                clip = clips.pop(0)
                undelivered = self.outbox.delete_refs(f"{clip.clip_id}:")
                self._remove(clip)
                used -= clip.size
                dropped += 1
                self.outbox.add("clips_dropped")
                self.outbox.add("clip_bytes_dropped", clip.size)
                if undelivered:
                    self.outbox.add("clips_dropped_undelivered")
                log.warning(
                    "clip spool over its quota: dropped clip %s (%d bytes, %d chunk(s) not yet delivered)",
                    clip.clip_id,
                    clip.size,
                    undelivered,
                )
        return dropped

    def _remove(self, clip: ClipInfo) -> None:
        (self.dir / clip.file).unlink(missing_ok=True)
        (self.dir / f"{clip.clip_id}.json").unlink(missing_ok=True)
