"""Which ingest worker joins a clip: a claim in the store, taken with one conditional UPDATE.

Ingest workers on one host share the clip spool, and the broker's ``$share`` subscription hands a clip's chunks
to any of them: two may each write one of a clip's last chunks and both find the clip complete. Before joining,
a worker moves the clip to ``joining`` with an UPDATE whose WHERE holds only while nobody holds a claim; the
store lets one of two such UPDATEs change the row (SQLite has one writer at a time, PostgreSQL re-reads a row
locked by another transaction once it commits), so one worker joins and the other does nothing, its chunk
being in the spool already. Each claim has an id of its own, and only the worker holding it ends it.

A claim is a lease: while the worker joins (reading, hashing, handing a clip of up to 1 GiB to an object store
across the network: minutes at worst), its ``Keeper`` renews the claim every ``RENEW_EVERY_S``. A claim not
renewed for ``STALE_AFTER_S`` was left by a worker killed while joining: the clip may be claimed again (the
stalled-clip round, ``ClipAssembler.request_missing``, does), within a couple of minutes of the kill however
long joins take, and a worker merely slow keeps its claim.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from kuzet.central.store import portable
from kuzet.shared import ids, timeutil

log = logging.getLogger(__name__)

RENEW_EVERY_S = 20.0
STALE_AFTER_S = 90.0  # four renewals missed: the worker is gone, not slow

JOINING = "joining"
# A clip's states, and where a claim leads (clips.state):
#   receiving -> joining (claimed: every chunk is in the spool) -> verified | failed | receiving
#   verified: joined, checked and stored; failed: it did not match its SHA-256 (every chunk is asked for
#   again, and the clip is receiving once they come); receiving: the media store refused it for now, or the
#   join broke (a later round joins it again). lost and abandoned come from outside a claim.
ENDS = ("verified", "failed", "receiving")
# A clip nobody is joining: one parameter, the moment before which a claim is stale (``stale_before``).
UNCLAIMED = "(state IN ('receiving', 'failed') OR (state = 'joining' AND claimed_at <= ?))"


@dataclass(frozen=True)
class Claim:
    clip_id: str
    claim_id: str


def stale_before() -> str:
    """The wire time before which a claim is stale."""
    return timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=STALE_AFTER_S))


def take(db, clip_id: str) -> Claim | None:
    """Claim ``clip_id`` to join it; None when another worker holds it (or it is no longer to be joined)."""
    claim = Claim(clip_id, ids.new_id())
    with portable.transaction(db):
        taken = portable.execute(
            db,
            f"UPDATE clips SET state = '{JOINING}', claim_id = ?, claimed_at = ? WHERE clip_id = ? AND {UNCLAIMED}",
            [claim.claim_id, timeutil.now_wire(), clip_id, stale_before()],
        ).rowcount
    return claim if taken == 1 else None


def end(db, claim: Claim, state: str, **columns) -> bool:
    """Move the claimed clip on to ``state``, setting ``columns`` too, in the caller's transaction; False when
    the claim no longer holds (it went stale and another worker took the clip over): then nothing changes."""
    if state not in ENDS:
        raise ValueError(f"a claim ends in one of {ENDS}, not {state!r}")
    sets = "".join(f", {column} = ?" for column in columns)
    return (
        portable.execute(
            db,
            f"UPDATE clips SET state = ?, claim_id = NULL, claimed_at = NULL{sets}"
            f" WHERE clip_id = ? AND state = '{JOINING}' AND claim_id = ?",
            [state, *columns.values(), claim.clip_id, claim.claim_id],
        ).rowcount
        == 1
    )


def renew(db, claim: Claim) -> bool:
    """Mark the claim fresh again; False when it no longer holds (taken over, or ended)."""
    with portable.transaction(db):
        return (
            portable.execute(
                db,
                f"UPDATE clips SET claimed_at = ? WHERE clip_id = ? AND state = '{JOINING}' AND claim_id = ?",
                [timeutil.now_wire(), claim.clip_id, claim.claim_id],
            ).rowcount
            == 1
        )


class Keeper:
    """Renews the claims one ingest worker holds while it joins their clips, on a thread of its own (started
    on first use, one connection: ``db`` gives each thread its own)."""

    def __init__(self, db: Callable[[], object]):
        self._db = db
        self._held: set[Claim] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, claim: Claim) -> Iterator[None]:
        with self._lock:
            self._held.add(claim)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kuzet-clip-claims", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(claim)

    def _run(self) -> None:
        wake = threading.Event()  # never set: the thread lives as long as the process (a daemon)
        while not wake.wait(RENEW_EVERY_S):
            with self._lock:
                held = list(self._held)
            for claim in held:
                try:
                    if not renew(self._db(), claim):
                        log.warning(
                            "clip %s: its claim was taken over while this worker joins it", claim.clip_id
                        )
                except Exception:  # the next round tries again, well before the claim goes stale
                    log.exception("clip %s: renewing the claim to join it failed", claim.clip_id)
