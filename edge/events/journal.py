"""Events still open, kept on disk: after a crash or a SIGKILL the agent closes them on its next start, so
central never shows an event as open forever.

The journal is a table in the outbox's database and is written in the transaction that queues the event's
message: an event is journaled exactly when its message is queued, with no window between the two in which a
kill could leave an event open for ever (or close it twice)."""

from __future__ import annotations

from datetime import datetime

from kuzet.edge.delivery.outbox import Outbox, Writes
from kuzet.shared import ids, timeutil
from kuzet.shared.messages import Event

_TABLE = "CREATE TABLE IF NOT EXISTS open_events (event_id TEXT PRIMARY KEY, message TEXT NOT NULL)"


class OpenEventJournal:
    def __init__(self, outbox: Outbox):
        self.outbox = outbox
        outbox.add_table(_TABLE)

    @staticmethod
    def record(tx: Writes, event: Event) -> None:
        """In the transaction queuing ``event``: remember its latest message while open; forget it once closed."""
        if event.state == "closed":
            tx.execute("DELETE FROM open_events WHERE event_id = ?", (event.event_id,))
        else:
            tx.execute(
                "INSERT OR REPLACE INTO open_events (event_id, message) VALUES (?, ?)",
                (event.event_id, event.model_dump_json(exclude_none=True)),
            )

    def closing_messages(self, now: datetime | None = None) -> list[Event]:
        """A ``closed`` message for each event a previous run left open (seq one past its last)."""
        now = now or timeutil.utc_now()
        closing = []
        for (message,) in self.outbox.query("SELECT message FROM open_events ORDER BY event_id"):
            last = Event.model_validate_json(message)
            note = "closed when the camera agent restarted; the event's true end was not seen"
            closing.append(
                last.model_copy(
                    update={
                        "id": ids.new_id(),
                        "ts": now,
                        "seq": last.seq + 1,
                        "state": "closed",
                        "ended_at": max(last.ts, last.started_at),
                        "description": f"{last.description or last.event_type}; {note}",
                    }
                )
            )
        return closing
