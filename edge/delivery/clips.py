"""Clip files waiting to be delivered, sent in chunks with a per-clip SHA-256, resent on request, bounded on disk.

A clip is moved into ``<dir>/<clip_id>.<ext>`` with a small JSON sidecar (hash, size, chunk count) and one
outbox row per chunk that refers to it (``ref = "<clip_id>:<index>"``); the chunk message is built when it is
sent. Central asks again with a ``clip_request`` for chunks that arrived bad or never (after a drop), and the
spool queues just those. Delivered clips are kept a while for such requests, then removed; when the spool
exceeds its quota the oldest clips go first (delivered or not) and every drop is counted. Events are never in
here, so the quota can never cost an event.

A clip is *promised* (``promise``, in the transaction of the event message that names it) when its recording
starts, and the promise is kept in the outbox's database until the clip is queued here or reported lost. Every
promised clip therefore ends in exactly one of two ways at central: verified, or a ``clip_lost`` message saying
why not (killed mid-recording and unreadable, dropped under the quota, asked for after it was removed).
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

from kuzet.edge.delivery.outbox import PRIORITY_CLIP, PRIORITY_RESULT, Outbox, Row, Writes
from kuzet.shared import messages, topics
from kuzet.shared.messages import CLIP_CHUNK_BYTES, ClipChunk, ClipLost, ClipRequest

log = logging.getLogger(__name__)

# WebM is Matroska with VP8/VP9: browsers play it when central serves it as video/x-matroska.
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/x-matroska",
}


_PROMISES = """
CREATE TABLE IF NOT EXISTS promised_clips (
    clip_id TEXT PRIMARY KEY,
    event_id TEXT,
    purpose TEXT NOT NULL,
    recording TEXT NOT NULL,
    promised_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Promise:
    """A clip central was told about (its event carries the clip id) that is not in the spool yet."""

    clip_id: str
    event_id: str | None
    purpose: str
    recording: Path  # where the file is being written


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
        self.lost_topic = topics.up(site, device, "clip_lost")
        self._lock = threading.Lock()
        outbox.add_table(_PROMISES)
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """``add`` writes the sidecar, then moves the clip in: a kill between the two leaves a sidecar alone (the
        clip is still where it was recorded, and still promised). A clip file with no sidecar is garbage."""
        for leftover in self.dir.iterdir():
            orphan_clip = leftover.suffix in CONTENT_TYPES and not leftover.with_suffix(".json").exists()
            orphan_sidecar = leftover.suffix == ".json" and not self._has_file(leftover.stem)
            if leftover.suffix == ".tmp" or orphan_clip or orphan_sidecar:
                leftover.unlink()

    # --- promising ----------------------------------------------------------------------------------------

    @staticmethod
    def promise(
        tx: Writes, clip_id: str, *, recording: Path, event_id: str | None = None, purpose: str = "event"
    ) -> None:
        """In the transaction of the message that names the clip: it will be delivered or reported lost."""
        tx.execute(
            "INSERT OR REPLACE INTO promised_clips (clip_id, event_id, purpose, recording, promised_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (clip_id, event_id, purpose, str(recording), time.time()),
        )

    def promises(self) -> list[Promise]:
        """Promised clips not yet queued nor reported lost: after a restart, those a killed agent was recording."""
        rows = self.outbox.query(
            "SELECT clip_id, event_id, purpose, recording FROM promised_clips ORDER BY promised_at"
        )
        return [Promise(c, e, p, Path(r)) for c, e, p, r in rows]

    def lost(self, clip_id: str, reason: str, detail: str = "", *, event_id=None, purpose="event") -> None:
        """Tell central the clip will never come (``reason`` as in ``ClipLost``), and count it."""
        message = ClipLost(
            device=self.device,
            clip_id=clip_id,
            event_id=event_id,
            purpose=purpose,
            reason=reason,
            detail=detail[:200],
        )
        with self.outbox.transaction() as tx:
            self._report_lost(tx, message)
        log.warning("clip %s lost (%s): %s", clip_id, reason, detail)

    def _report_lost(self, tx: Writes, message: ClipLost) -> None:
        tx.put(self.lost_topic, messages.encode(message), kind="clip_lost", priority=PRIORITY_RESULT)
        tx.count("clips_lost")
        tx.count(f"clips_lost_{message.reason}")
        tx.execute("DELETE FROM promised_clips WHERE clip_id = ?", (message.clip_id,))

    # --- adding -------------------------------------------------------------------------------------------

    def add(
        self,
        path: Path,
        *,
        clip_id: str,
        purpose: str = "event",
        event_id: str | None = None,
    ) -> ClipInfo:
        """Move the finished file at ``path`` into the spool and queue all its chunks; this fulfils the clip's
        promise, in the same transaction as the chunks are queued."""
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
            sidecar = self.dir / f"{clip_id}.json"
            sidecar.with_suffix(".tmp").write_text(json.dumps(info.__dict__))
            sidecar.with_suffix(".tmp").replace(sidecar)
            shutil.move(path, self.dir / info.file)
            self._queue_all(info)
        self.enforce_quota()
        return info

    def resume(self, clip_id: str) -> bool:
        """After a restart: a promised clip already moved in here when the agent was killed gets its chunks
        queued now. False when the spool does not have it."""
        info = self.info(clip_id)
        if info is None or not self._has_file(clip_id):
            return False
        with self._lock:
            self._queue_all(info)
        return True

    def _queue_all(self, info: ClipInfo) -> None:
        with self.outbox.transaction() as tx:
            self._queue(tx, info, range(info.count))
            tx.execute("DELETE FROM promised_clips WHERE clip_id = ?", (info.clip_id,))

    def _queue(self, tx: Writes, info: ClipInfo, indexes) -> int:
        queued = 0
        for index in indexes:
            ref = f"{info.clip_id}:{index:06d}"
            if not tx.has_ref(ref):
                tx.put(self.topic, None, kind="clip", priority=PRIORITY_CLIP, ref=ref)
                queued += 1
        return queued

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
            if any(p.clip_id == request.clip_id for p in self.promises()):
                return 0  # still being recorded or recovered: it comes when it is ready
            self.lost(
                request.clip_id, "gone", "asked for again, but no longer on the device (dropped or expired)"
            )
            return 1
        wanted = [i for i in request.missing if i < info.count] or range(info.count)
        with self._lock, self.outbox.transaction() as tx:
            queued = self._queue(tx, info, wanted)
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

    def _has_file(self, clip_id: str) -> bool:
        info = self.info(clip_id)
        return info is not None and (self.dir / info.file).exists()

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
                with self.outbox.transaction() as tx:
                    undelivered = tx.delete_refs(f"{clip.clip_id}:")
                    tx.count("clips_dropped")
                    tx.count("clip_bytes_dropped", clip.size)
                    if undelivered:  # central is waiting for the rest: tell it, per clip, that none will come
                        tx.count("clips_dropped_undelivered")
                        lost = ClipLost(
                            device=self.device,
                            clip_id=clip.clip_id,
                            event_id=clip.event_id,
                            purpose=clip.purpose,
                            reason="quota",
                            detail=f"dropped under the disk quota with {undelivered} chunk(s) undelivered",
                        )
                        self._report_lost(tx, lost)
                self._remove(clip)
                used -= clip.size
                dropped += 1
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
