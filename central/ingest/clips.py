"""Reassembling clips (and badge evidence segments) from their chunks, and asking again for what is missing.

Chunks may arrive in any order, more than once, corrupted, or not at all. Each received chunk is kept as its
own file under ``<spool>/<clip_id>/`` so that the set of files *is* the record of what has arrived; this
survives a central restart and makes duplicates harmless. When every chunk is there, the clip is joined, its
SHA-256 checked against the one every chunk carries, and the file moved into the media store, by the one
ingest worker that claims it in the store first (``clip_claims``): workers sharing the spool may each take one
of a clip's last chunks at the same moment.

A device that will never send (the rest of) a clip says so with ``clip_lost``: the clip is marked ``lost`` with
the reason, is no longer asked for, and chunks still on their way for it are ignored.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from kuzet.central.ingest import clip_claims
from kuzet.central.ingest.clip_claims import Claim
from kuzet.central.store import portable
from kuzet.central.store.media import MediaStore, MediaUnavailable
from kuzet.shared import messages, timeutil, topics
from kuzet.shared.messages import CLIP_CHUNK_BYTES, ClipChunk, ClipLost, ClipRequest

log = logging.getLogger(__name__)

# ClipRequest.missing holds at most this many indexes; the rest are asked for on the next round.
MAX_MISSING_PER_REQUEST = 10_000


class ClipRejected(ValueError):
    """A chunk that contradicts its clip (another size, hash or sender): kept by ingest as a dead letter."""


MIB = 1024 * 1024
# Clips still being received hold their declared size in the spool until they are stored or given up.
_SPOOLING = "state IN ('receiving', 'failed', 'joining')"
# A clip that takes no more chunks: stored, or the device said it will never send it.
_SETTLED = ("verified", "lost")
# A clip whose chunks all came: stored, or a worker is joining it (a clip_lost for it comes too late).
_ARRIVED = ("verified", clip_claims.JOINING)


@dataclass(frozen=True)
class SpoolLimits:
    """How much a clip may claim and the spool may hold (bytes). ``total_bytes`` is a share of ``[storage]
    max_media_gb``, and retention keeps the media under that limit less what the spool holds."""

    clip_bytes: int = 1024 * MIB
    device_bytes: int = 2048 * MIB
    total_bytes: int = 5 * 1024 * MIB


def spooled_bytes(db, device: str | None = None) -> int:
    """The declared sizes of the clips being received (of ``device``, or of all)."""
    where, params = (f"{_SPOOLING} AND device = ?", [device]) if device else (_SPOOLING, [])
    sql = f"SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM clips WHERE {where}"
    return portable.execute(db, sql, params).fetchone()[0]


class ClipAssembler:
    def __init__(
        self,
        db,
        media: MediaStore,
        spool_dir: Path,
        send: Callable[[str, bytes], None],
        give_up_after_s: float = 24 * 3600,
        limits: SpoolLimits = SpoolLimits(),
    ):
        # ``db`` may be a database or a callable returning this thread's one (``Central.db``), because
        # chunks arrive on the ingest thread and stalled clips are looked for on a timer thread.
        self._db = db if callable(db) else (lambda: db)
        self._claims = clip_claims.Keeper(self._db)
        self.media = media
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.send = send
        # A clip still incomplete this long after its first chunk is given up (the device dropped it under its
        # disk quota, or was replaced): it is marked "abandoned" and no longer asked for.
        self.give_up_after_s = give_up_after_s
        self.limits = limits
        self._lock = threading.Lock()
        self.media_refused: str | None = None  # set by request_missing

    # --- receiving ----------------------------------------------------------------------------------------

    def handle(self, site: str, chunk: ClipChunk) -> str | None:
        """Take one chunk; return "verified" or "failed" when it completes its clip, else None.

        Raises ClipRejected for a chunk that contradicts what earlier chunks said about its clip."""
        with self._lock:
            return self._handle(site, chunk)

    def _handle(self, site: str, chunk: ClipChunk) -> str | None:
        if not chunk.count <= chunk.size <= chunk.count * CLIP_CHUNK_BYTES:
            raise ClipRejected(
                f"clip {chunk.clip_id}: {chunk.count} chunks of at most {CLIP_CHUNK_BYTES} bytes cannot make "
                f"{chunk.size} bytes"
            )
        db = self._db()
        row = self._row(db, chunk.clip_id)
        if row is None:
            self._check_room(db, chunk)
            row = self._create(db, site, chunk)
        elif row["state"] in _SETTLED:
            return None  # a late duplicate of a clip already stored, or one the device said it no longer has
        elif (row["sha256"], row["count"], row["size"], row["device"]) != (
            chunk.sha256,
            chunk.count,
            chunk.size,
            chunk.device,
        ):
            raise ClipRejected(
                f"clip {chunk.clip_id}: chunk {chunk.index} disagrees with the clip's device/sha256/count/size "
                f"({row['device']}, {row['sha256'][:12]}..., {row['count']}, {row['size']})"
            )

        data = messages.from_base64(chunk.data)
        if hashlib.sha256(data).hexdigest() != chunk.chunk_sha256:
            log.warning("clip %s: chunk %d has a bad hash; asking again", chunk.clip_id, chunk.index)
            with portable.transaction(db):
                portable.execute(
                    db,
                    "UPDATE clips SET bad_chunks = bad_chunks + 1, updated_at = ? WHERE clip_id = ?",
                    [timeutil.now_wire(), chunk.clip_id],
                )
            self._ask(site, chunk.device, chunk.clip_id, [chunk.index])
            return None

        part = self._chunk_file(chunk.clip_id, chunk.index)
        added = 0 if part.exists() else len(data)
        if added and (row.get("spooled") or 0) + added > chunk.size:
            raise ClipRejected(
                f"clip {chunk.clip_id}: chunk {chunk.index} would take the chunks past the clip's {chunk.size} bytes"
            )
        if added:
            part.parent.mkdir(parents=True, exist_ok=True)
            tmp = part.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(part)
        received = self._received(chunk.clip_id)
        with portable.transaction(db):
            # A clip being joined stays claimed; one stored meanwhile by another worker is left as it is.
            taken = portable.execute(
                db,
                "UPDATE clips SET received = ?, spooled = coalesce(spooled, 0) + ?, updated_at = ?,"
                f" state = CASE WHEN state = '{clip_claims.JOINING}' THEN state ELSE 'receiving' END"
                f" WHERE clip_id = ? AND state NOT IN {_listed(_SETTLED)}",
                [len(received), added, timeutil.now_wire(), chunk.clip_id],
            ).rowcount
        if not taken:
            shutil.rmtree(self.spool_dir / chunk.clip_id, ignore_errors=True)  # the late chunk just written
            return None
        if len(received) < chunk.count:
            return None
        return self._complete(db, site, self._row(db, chunk.clip_id))

    def _complete(self, db, site: str, row: dict) -> str | None:
        """Join a clip whose every chunk is in the spool if this worker claims it first: "verified" or
        "failed"; None when another worker has the claim (its chunk is in the spool already)."""
        claim = clip_claims.take(db, row["clip_id"])
        if claim is None:
            return None
        try:
            with self._claims.holding(claim):
                return self._join(db, site, row, claim)
        except Exception:
            # The chunks stay in the spool and the clip "receiving": request_missing joins it again (the media
            # store refused it, or the join broke).
            with portable.transaction(db):
                held = clip_claims.end(db, claim, "receiving")
            if held:
                raise
            log.warning("clip %s: taken over by another worker while this one joined it", row["clip_id"])
            return None

    def _join(self, db, site: str, row: dict, claim: Claim) -> str | None:
        clip_id = row["clip_id"]
        joined = self.spool_dir / f"{clip_id}.{claim.claim_id}.joined"
        for left in self.spool_dir.glob(f"{clip_id}.*.joined"):  # by a worker killed while joining it
            if left != joined:
                left.unlink(missing_ok=True)
        try:
            digest = hashlib.sha256()
            with joined.open("wb") as out:
                for index in range(row["count"]):
                    data = self._chunk_file(clip_id, index).read_bytes()
                    digest.update(data)
                    out.write(data)
            size = joined.stat().st_size
            if digest.hexdigest() != row["sha256"] or size != row["size"]:
                return self._failed(db, site, row, claim)
            kind = "clip" if row["purpose"] == "event" else "evidence"
            event_id = row["event_id"] or (_dispatch_event(db, clip_id) if kind == "evidence" else None)
            self.media.adopt(
                joined,
                row["sha256"],
                kind=kind,
                content_type=row["content_type"],
                device=row["device"],
                event_id=event_id,
            )
        finally:
            joined.unlink(missing_ok=True)  # gone already when the media store took it
        now = timeutil.now_wire()
        with portable.transaction(db):
            held = clip_claims.end(db, claim, "verified", completed_at=now, updated_at=now)
            if held and row["event_id"]:
                portable.execute(
                    db,  # the sender's own event only (ingest refuses the others' before this)
                    "UPDATE events SET clip_id = ? WHERE event_id = ? AND device = ?",
                    [clip_id, row["event_id"], row["device"]],
                )
        if not held:
            log.warning("clip %s: taken over by another worker while this one joined it", clip_id)
            return None
        shutil.rmtree(self.spool_dir / clip_id, ignore_errors=True)
        log.info("clip %s from %s verified (%d bytes)", clip_id, row["device"], size)
        return "verified"

    def _failed(self, db, site: str, row: dict, claim: Claim) -> str | None:
        """The joined file does not match the clip's SHA-256 or size: every chunk is asked for again."""
        clip_id = row["clip_id"]
        log.warning(
            "clip %s from %s: the joined file does not match its sha256/size; asking for all of it again",
            clip_id,
            row["device"],
        )
        with portable.transaction(db):
            held = clip_claims.end(db, claim, "failed", received=0, spooled=0, updated_at=timeutil.now_wire())
        if not held:
            return None
        shutil.rmtree(self.spool_dir / clip_id, ignore_errors=True)
        self._ask(site, row["device"], clip_id, [])
        return "failed"

    def lost(self, site: str, message: ClipLost) -> str | None:
        """The device will never send this clip (or the rest of it): mark it lost, with the reason, unless it
        arrived after all (stored, or a worker is joining it). Returns the clip's event when it changed."""
        reason = f"{message.reason}: {message.detail}" if message.detail else message.reason
        now = timeutil.now_wire()
        with self._lock:
            db = self._db()
            row = self._row(db, message.clip_id)
            if row is not None and row["device"] != message.device:
                raise ClipRejected(f"clip {message.clip_id} belongs to {row['device']}, not {message.device}")
            if row is not None and row["state"] in _ARRIVED:
                return None
            # What central already knows of the clip wins: a device asked for a clip it no longer has cannot
            # tell whose it was.
            known = row or {}
            event_id = known.get("event_id") or message.event_id
            with portable.transaction(db):
                marked = _upsert_clip(
                    db,
                    {
                        "clip_id": message.clip_id,
                        "device": message.device,
                        "site": site,
                        "event_id": event_id,
                        "purpose": known.get("purpose") or message.purpose,
                        "state": "lost",
                        "lost_reason": reason,
                        "created_at": known.get("created_at") or now,
                        "updated_at": now,
                    },
                )
            if not marked:  # claimed by a worker since it was read: it arrived after all
                return None
            shutil.rmtree(self.spool_dir / message.clip_id, ignore_errors=True)
        log.warning("clip %s from %s lost: %s", message.clip_id, message.device, reason)
        return event_id

    def _check_room(self, db, chunk: ClipChunk) -> None:
        """Refuse a new clip that claims more than a clip may, or than its device's or the whole spool's room."""
        limits, size = self.limits, chunk.size
        refusal = None
        if size > limits.clip_bytes:
            refusal = f"it claims {size} bytes; a clip may have {limits.clip_bytes}"
        elif (held := spooled_bytes(db, chunk.device)) + size > limits.device_bytes:
            refusal = f"{chunk.device} already has {held} bytes being received; a device may have {limits.device_bytes}"
        elif (held := spooled_bytes(db)) + size > limits.total_bytes:
            refusal = f"the spool holds {held} bytes; it may hold {limits.total_bytes}"
        if refusal:
            raise ClipRejected(f"clip {chunk.clip_id} refused: {refusal}")

    # --- asking again ---------------------------------------------------------------------------------------

    def request_missing(self, stalled_after_s: float = 30) -> int:
        """Ask devices again for the chunks of clips that have received nothing for ``stalled_after_s``, and
        join again those complete in the spool that the media folder refused. A clip that fails is logged and
        the round goes on; ``media_refused`` is the media folder's last refusal of the round (None: none)."""
        asked = 0
        self.media_refused = None
        with self._lock:
            for row in self._stalled(stalled_after_s):
                try:
                    asked += self._again(row)
                except MediaUnavailable as exc:
                    self.media_refused = str(exc)
                    log.warning(
                        "clip %s: the media folder refuses it (%s); joined again later", row["clip_id"], exc
                    )
                except Exception:
                    log.exception("clip %s: asking again failed; the next round tries again", row["clip_id"])
        return asked

    def _stalled(self, stalled_after_s: float) -> list[dict]:
        """Clips quiet for ``stalled_after_s``, and clips whose claim to join them went stale."""
        cutoff = timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=stalled_after_s))
        return list(
            portable.rows(
                self._db(),
                # <=: times are to the millisecond, and 0 s means "whatever has arrived so far".
                "SELECT * FROM clips WHERE (state IN ('receiving', 'failed') AND updated_at <= ?)"
                f" OR (state = '{clip_claims.JOINING}' AND claimed_at <= ?)",
                [cutoff, clip_claims.stale_before()],
            )
        )

    def _again(self, row: dict) -> int:
        """Give up on, join, or ask again for one stalled clip; returns 1 when a request was sent."""
        db = self._db()
        give_up = timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=self.give_up_after_s))
        if row["created_at"] < give_up:
            with portable.transaction(db):
                given_up = portable.execute(
                    db,  # unless a worker claimed it meanwhile to join it
                    f"UPDATE clips SET state = 'abandoned' WHERE clip_id = ? AND {clip_claims.UNCLAIMED}",
                    [row["clip_id"], clip_claims.stale_before()],
                ).rowcount
            if given_up:
                log.warning("clip %s from %s: still incomplete, given up", row["clip_id"], row["device"])
                shutil.rmtree(self.spool_dir / row["clip_id"], ignore_errors=True)
            return 0
        have = self._received(row["clip_id"])
        missing = [i for i in range(row["count"]) if i not in have]
        if not missing:  # everything arrived but joining was interrupted (a kill) or refused (media full)
            self._complete(db, row["site"], row)
            return 0
        # An empty list asks for every chunk, which is shorter on the wire when nothing has arrived.
        self._ask(row["site"], row["device"], row["clip_id"], missing if have else [])
        with portable.transaction(db):
            portable.execute(
                db, "UPDATE clips SET updated_at = ? WHERE clip_id = ?", [timeutil.now_wire(), row["clip_id"]]
            )
        return 1

    def _ask(self, site: str, device: str, clip_id: str, missing: list[int]) -> None:
        request = ClipRequest(device=device, clip_id=clip_id, missing=missing[:MAX_MISSING_PER_REQUEST])
        try:
            self.send(topics.down(site, device, "clip_request"), messages.encode(request))
        except Exception:  # no link right now: the stalled-clip timer asks again later
            log.warning("clip %s: cannot send the clip request to %s now", clip_id, device, exc_info=True)

    # --- bookkeeping ----------------------------------------------------------------------------------------

    def _row(self, db, clip_id: str) -> dict | None:
        rows = portable.rows(db, "SELECT * FROM clips WHERE clip_id = ?", [clip_id])
        return rows[0] if rows else None

    def _create(self, db, site: str, chunk: ClipChunk) -> dict:
        now = timeutil.now_wire()
        row = {
            "clip_id": chunk.clip_id,
            "device": chunk.device,
            "site": site,
            "event_id": chunk.event_id,
            "purpose": chunk.purpose,
            "sha256": chunk.sha256,
            "size": chunk.size,
            "count": chunk.count,
            "received": 0,
            "content_type": chunk.content_type,
            "state": "receiving",
            "created_at": now,
            "updated_at": now,
            "bad_chunks": 0,
        }
        with portable.transaction(db):
            columns = ", ".join(row)
            portable.execute(
                db,
                f"INSERT INTO clips ({columns}) VALUES ({', '.join('?' * len(row))}) ON CONFLICT DO NOTHING",
                list(row.values()),
            )
        return row

    def _chunk_file(self, clip_id: str, index: int) -> Path:
        return self.spool_dir / clip_id / f"{index:06d}"

    def _received(self, clip_id: str) -> set[int]:
        folder = self.spool_dir / clip_id
        if not folder.is_dir():
            return set()
        return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def _dispatch_event(db, segment_id: str) -> str | None:
    """A body-camera recording (clip id = its evidence segment's id) arrives without an event: it belongs to the
    event of the dispatch it was recorded on, if that is known yet (retention links the others later)."""
    row = portable.execute(
        db,
        "SELECT d.event_id FROM evidence_segments s JOIN dispatches d ON d.dispatch_id = s.dispatch_id"
        " WHERE s.segment_id = ?",
        [segment_id],
    ).fetchone()
    return row[0] if row else None


def spool_limits(config) -> SpoolLimits:
    """The limits ``[ingest]`` and ``[storage] max_media_gb`` of central's configuration set."""
    return SpoolLimits(
        clip_bytes=int(config.ingest.max_clip_mb * MIB),
        device_bytes=int(config.ingest.spool_per_device_mb * MIB),
        total_bytes=int(config.storage.max_media_gb * config.ingest.spool_share * 1024 * MIB),
    )


def _upsert_clip(db, row: dict) -> bool:
    """The clip's row with these columns set (created if new; its other columns kept if not), unless it has
    arrived; True when written."""
    columns = ", ".join(row)
    updates = ", ".join(f"{column} = excluded.{column}" for column in row if column != "clip_id")
    return (
        portable.execute(
            db,
            f"INSERT INTO clips ({columns}) VALUES ({', '.join('?' * len(row))})"
            f" ON CONFLICT(clip_id) DO UPDATE SET {updates} WHERE clips.state NOT IN {_listed(_ARRIVED)}",
            list(row.values()),
        ).rowcount
        == 1
    )


def _listed(states: tuple[str, ...]) -> str:
    """``states`` as an SQL list: ``('verified', 'lost')``."""
    return "(" + ", ".join(f"'{state}'" for state in states) + ")"
