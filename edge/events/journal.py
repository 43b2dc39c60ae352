"""Events still open, kept on disk: after a crash or a SIGKILL the agent closes them on its next start, so
central never shows an event as open forever."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from shared import ids, timeutil
from shared.messages import Event


class OpenEventJournal:
    def __init__(self, path: str | Path):
        self._conn = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS open_events (event_id TEXT PRIMARY KEY, message TEXT)")

    def record(self, event: Event) -> None:
        """Remember the latest message of an open event; forget it once closed."""
        if event.state == "closed":
            self._conn.execute("DELETE FROM open_events WHERE event_id = ?", (event.event_id,))
        else:
            self._conn.execute(
                "INSERT OR REPLACE INTO open_events (event_id, message) VALUES (?, ?)",
                (event.event_id, event.model_dump_json(exclude_none=True)),
            )

    def closing_messages(self, now: datetime | None = None) -> list[Event]:
        """A ``closed`` message for each event a previous run left open (seq one past its last)."""
        now = now or timeutil.utc_now()
        closing = []
        for (message,) in self._conn.execute("SELECT message FROM open_events ORDER BY event_id"):
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

    def close(self) -> None:
        self._conn.close()
