"""What ingest has done since it started, read by ``/metrics`` and ``/healthz``: counters, dead letters by
cause, and histograms of batch size, commit time and how long messages waited to be stored.

``received`` is written by the MQTT thread only, the clips' by the media thread only; what both the batch writer
and the media thread count goes through ``add`` and ``dead_lettered``, under a lock. The scrape reads plain
integers; the histograms are prometheus_client's own, registered by the web app.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from prometheus_client import Histogram

if TYPE_CHECKING:
    from kuzet.central.ingest.batch import Outcome

# Why a message was dead-lettered, as the ``reason`` label of kuzet_ingest_dead_letters_total.
DEAD_LETTER_CAUSES = (
    "invalid",  # it breaks the contract (shared.messages.decode refused it)
    "revoked",  # its device is revoked
    "unauthorised",  # its device is not registered, or its kind of device does not send this kind
    "media",  # a snapshot or clip chunk that does not check out
    "unstorable",  # the database or the media store refused it
    "hook",  # a part that takes it after the commit (routing, commands) failed on it
)


@dataclass
class Counters:
    received: int = 0  # messages taken from MQTT
    stored: int = 0  # valid messages ingest stored in its own transaction (not counting duplicates)
    # Valid messages ingest does not store but hands, after its commit, to the part that does (routing:
    # location, dispatch_state, evidence; commands: command_result) or shows (live).
    handed_on: int = 0
    duplicates: int = 0  # event messages whose id was already stored: nothing changed
    timeline_only: int = 0  # event messages older than the stored state: kept in the timeline only
    dead_letters: int = 0  # refused or unstorable messages, kept in dead_letters
    hook_errors: int = 0  # hooks that raised (their message is also dead-lettered)
    batches: int = 0  # SQLite transactions committed
    clips_verified: int = 0  # clips (and evidence segments) joined and matching their SHA-256
    clips_failed: int = 0  # clips joined but not matching: asked for again
    clips_lost: int = 0  # clips the device said it will never send (clip_lost)
    clip_chunks_rejected: int = 0  # chunks contradicting their clip (dead-lettered)
    dead_letters_by_cause: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(DEAD_LETTER_CAUSES, 0)
    )

    _lock: ClassVar[threading.Lock] = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        """What one commit stored, handed on and dead-lettered."""
        with self._lock:
            self.stored += outcome.stored
            self.handed_on += outcome.handed_on
            self.duplicates += outcome.duplicates
            self.timeline_only += outcome.timeline_only
        for letter in outcome.dead_letters:
            self.dead_lettered(letter.cause)

    def dead_lettered(self, cause: str) -> None:
        with self._lock:
            self.dead_letters += 1
            self.dead_letters_by_cause[cause] += 1

    def as_dict(self) -> dict:
        return {**self.__dict__, "dead_letters_by_cause": dict(self.dead_letters_by_cause)}


class Histograms:
    """Observed once per batch, so their cost does not grow with the message rate."""

    def __init__(self) -> None:
        self.batch_size = Histogram(
            "kuzet_ingest_batch_size",
            "Messages per SQLite transaction",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=None,
        )
        self.commit_seconds = Histogram(
            "kuzet_ingest_commit_seconds",
            "Time to write and commit one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=None,
        )
        self.delay_seconds = Histogram(
            "kuzet_ingest_delay_seconds",
            "From arrival at central to commit, for the first (longest-waiting) message of each batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=None,
        )

    def collect(self):
        for histogram in (self.batch_size, self.commit_seconds, self.delay_seconds):
            yield from histogram.collect()
