"""Ingest's media on a thread of their own: snapshots, clip chunks and lost clips.

The batch writer (``central.ingest.service``) stores and commits a batch's events, heartbeats and positions; the
media messages among it, checked like the rest (revoked devices, authority), come here in arrival order and are
acknowledged once their bytes and rows are stored or dead-lettered. A snapshot costs a hash and a round trip to
the object store, a clip's last chunk a join and an upload: on the batch writer's thread every event and
heartbeat behind them waited for those (issue 15). One thread keeps a clip's chunks in order, and a snapshot's
event is committed before the snapshot comes here. The queue is bounded: when media fall behind, the batch
writer waits, and the broker keeps the rest in central's session.

A media store that refuses bytes (the folder full, the bucket away) is the media outage: a snapshot is kept in
the database (``media_retry``) and a clip chunk stays in the spool, both written later, every
``[ingest] clip_check_interval_s``, when missing clip chunks are also asked for again."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from kuzet.central import alerts
from kuzet.central.ingest import authority, media_retry, snapshots
from kuzet.central.ingest.batch import Outcome, Valid
from kuzet.central.ingest.clips import ClipAssembler, ClipRejected, spool_limits
from kuzet.central.ingest.store_health import Outage, StoreDown, store_errors, transient
from kuzet.central.store import portable
from kuzet.central.store.media import MediaStore, MediaUnavailable
from kuzet.shared import messages

if TYPE_CHECKING:
    from kuzet.central.ingest.service import IngestService

log = logging.getLogger(__name__)

MEDIA_KINDS = ("snapshot", "clip", "clip_lost")
QUEUE_MAX = 2_000  # media messages waiting (a clip chunk is up to 256 KiB): about 0.5 GiB at worst
TAKE_MAX = 200  # media messages stored per round


class MediaWriter:
    def __init__(self, service: IngestService):
        self.service = service
        self.central = service.central
        self.settings = service.settings
        self.outage = Outage(self.central, alerts.say("the_media_folder"), held=media_retry.HELD)
        self.media: MediaStore | None = None  # opened on the media thread
        self._clips: ClipAssembler | None = None
        self._queue: queue.Queue[Valid] = queue.Queue(maxsize=QUEUE_MAX)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-media", daemon=True)

    # --- the batch writer's side ----------------------------------------------------------------------

    def start(self) -> MediaWriter:
        self._thread.start()
        return self

    def submit(self, items: list[Valid]) -> None:
        """Media messages of a committed batch, to be stored and acknowledged here (waits while the queue is
        full)."""
        for item in items:
            self._queue.put(item)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Store what is queued, then stop."""
        self._closing.set()
        if self._thread.ident is None:
            return  # never started
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            log.error("ingest: media not finished within %.0f s; %d unstored", timeout_s, self.depth)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the media thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        # Central.db gives each thread its own connection; the media store and the clips are this thread's.
        self.media = MediaStore.for_central(self.central)
        self._clips = ClipAssembler(
            self.central.db,
            self.media,
            self.central.data_dir / "spool",
            self.service.publish,
            limits=spool_limits(self.central.config),
        )
        next_check = time.monotonic() + self.settings.clip_check_interval_s
        held: list[Valid] = []  # what the store could not take: tried again before anything new
        while True:
            items = held or self._take()
            if items:
                try:
                    held = self._store(items)
                except Exception:  # a bug here must not end ingest; the messages are in the log
                    log.exception("ingest: %d media messages failed outside storage", len(items))
                    self.service.acknowledge([item.incoming for item in items])
                    held = []
                if held and self._closing.wait(self.service.outage.delay):
                    log.error(
                        "ingest: stopping with %d media messages unstored (the broker keeps them)", len(held)
                    )
                    return
            elif self._closing.is_set():
                return
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.settings.clip_check_interval_s
                self._check()

    def _take(self) -> list[Valid]:
        try:
            items = [self._queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        while len(items) < TAKE_MAX:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _check(self) -> None:
        """Ask devices for the chunks of stalled clips; write the snapshots kept during a media outage."""
        try:
            self._clips.request_missing(stalled_after_s=self.settings.clip_stalled_after_s)
            conn = self.central.db()
            changed, refused = media_retry.retry(
                conn, lambda message: snapshots.store_one(conn, self.media, message)
            )
            refused = refused or self._clips.media_refused
            if refused:
                self.outage.failed(MediaUnavailable(refused))
            elif not media_retry.waiting(conn):
                self.outage.recovered()
            if changed:
                self.service.finish(conn, Outcome(changed_events=changed), [])
        except Exception:
            log.exception("ingest: the media round (missing clip chunks, kept snapshots) failed")

    def _store(self, items: list[Valid]) -> list[Valid]:
        """Store ``items`` and acknowledge them; returns them all, unacknowledged, when the database cannot
        take them now."""
        try:
            with store_errors():
                conn = self.central.db()
            outcome, rows = Outcome(), []
            with store_errors():
                owners = authority.event_owners(conn, [item.message for item in items])
            for item in items:
                outcome.merge(self._store_one(conn, item, owners, rows))
            if rows:
                with store_errors(), portable.transaction(conn):
                    snapshots.record(conn, rows)
        except StoreDown as down:  # all of them held: storing them again changes nothing
            self.service.outage.failed(down.__cause__)
            return items
        self.service.finish(conn, outcome, outcome.hooks)
        self.service.acknowledge([item.incoming for item in items])
        return []

    def _store_one(self, conn, item: Valid, owners: dict[str, str], rows: list[dict]) -> Outcome:
        outcome = Outcome()
        message = item.message
        try:
            if foreign := authority.foreign_event(owners, message):
                raise _Refused(foreign, "unauthorised")
            if message.type == "snapshot":
                event_id = self._store_snapshot(message, owners, rows)
            elif message.type == "clip_lost":
                self.service.counters.clips_lost += 1
                event_id = self._clips.lost(item.site, message)
            else:
                event_id = self._store_clip_chunk(item.site, message)
        except _Refused as exc:
            return self._refuse(conn, item, exc.reason, exc.cause)
        except MediaUnavailable as exc:  # the media store's fault: kept (snapshot) or in the spool (clip)
            self.outage.failed(exc)
            if message.type == "snapshot":
                with store_errors(), portable.transaction(conn):
                    media_retry.keep(
                        conn, item.incoming.topic, item.incoming.payload, item.received_at, str(exc)
                    )
            outcome.stored += 1
            return outcome
        except ClipRejected as exc:  # contradicts its clip's earlier chunks: the device's problem, not ours
            self.service.counters.clip_chunks_rejected += 1
            return self._refuse(conn, item, str(exc), "media")
        except Exception as exc:
            if transient(exc):  # the store's trouble, not the message's: held and tried again
                raise StoreDown(str(exc)) from exc
            log.exception("ingest: storing %s failed", item.incoming.topic)
            return self._refuse(conn, item, f"could not store: {exc}", "unstorable")
        if event_id is not None:
            outcome.changed_events.add(event_id)
        outcome.stored += 1
        outcome.hooks.append(item)
        return outcome

    def _refuse(self, conn, item: Valid, reason: str, cause: str) -> Outcome:
        with store_errors(), portable.transaction(conn):
            return Outcome(dead_letters=[self.service.dead_letter(conn, item.incoming, reason, cause)])

    def _store_snapshot(
        self, message: messages.Snapshot, owners: dict[str, str], rows: list[dict]
    ) -> str | None:
        """The bytes stored, the row left in ``rows`` for ``snapshots.record``; returns the event that shows this
        snapshot once recorded, if that event is stored (``owners``: the round's)."""
        row = snapshots.put(self.media, message)
        if row is None:
            raise _Refused("snapshot sha256 does not match its data", "media")
        rows.append(row)
        return message.event_id if owners.get(message.event_id) == message.device else None

    def _store_clip_chunk(self, site: str, chunk: messages.ClipChunk) -> str | None:
        """Returns the clip's event once the whole clip has arrived and checked out."""
        completed = self._clips.handle(site, chunk)
        if completed == "verified":
            self.service.counters.clips_verified += 1
        elif completed == "failed":
            self.service.counters.clips_failed += 1
        return chunk.event_id if completed else None


class _Refused(Exception):
    def __init__(self, reason: str, cause: str = "unstorable"):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
