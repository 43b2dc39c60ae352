"""What one ingest batch is made of: the messages as they arrived, the valid ones decoded, the refused ones with
their reason, the dead letters written, and what the batch changed (announced after its commit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuzet.central.ingest.runtime import wire_time
from kuzet.shared.messages import Envelope


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    arrived: float  # time.time() when paho handed it over
    mid: int = 0  # the MQTT packet id to acknowledge once stored (0: QoS 0, nothing to acknowledge)
    connection: int = 0  # BulkReceiveClient.connection it arrived on
    broker: int = 0  # the index in [mqtt] brokers of the broker it arrived from

    @property
    def received_at(self) -> str:
        return wire_time(self.arrived)


@dataclass(frozen=True, slots=True)
class Valid:
    incoming: Incoming
    site: str
    message: Envelope
    received_at: str


Refusal = tuple[Incoming, str, str]  # a message refused before storage: it, the reason, the cause


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter as written: its row id, the topic, the reason, and its cause (metrics.DEAD_LETTER_CAUSES)."""

    id: int
    topic: str
    reason: str
    cause: str


@dataclass
class Outcome:
    """What a batch changed, collected inside the transaction and announced after the commit."""

    stored: int = 0
    handed_on: int = 0
    duplicates: int = 0
    timeline_only: int = 0
    changed_events: set[str] = field(default_factory=set)
    created_rows: dict[str, dict] = field(default_factory=dict)  # rows of new events, as stored
    changed_devices: set[str] = field(default_factory=set)
    shown_devices: set[str] = field(default_factory=set)  # devices whose heartbeat the pages are told of
    dead_letters: list[Letter] = field(default_factory=list)
    hooks: list[Valid] = field(default_factory=list)  # messages to hand to hooks

    def merge(self, other: Outcome) -> None:
        self.stored += other.stored
        self.handed_on += other.handed_on
        self.duplicates += other.duplicates
        self.timeline_only += other.timeline_only
        for event_id in other.changed_events - other.created_rows.keys():
            self.created_rows.pop(event_id, None)  # changed again since: read it back
        self.created_rows |= other.created_rows
        self.changed_events |= other.changed_events
        self.changed_devices |= other.changed_devices
        self.shown_devices |= other.shown_devices
        self.dead_letters += other.dead_letters
        self.hooks += other.hooks
