"""The badge's dispatch inbox: what central asked this officer to do, and how far they have got.

Kept in SQLite on the badge so that a reboot mid-dispatch loses nothing. The officer moves a dispatch
forward only (acknowledged -> en route -> on scene -> resolved, steps may be skipped) or declines it with a
reason before reaching the scene; central may cancel it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from kuzet.shared import timeutil
from kuzet.shared.messages import Dispatch

STEPS = ("new", "acknowledged", "en_route", "on_scene", "resolved")
CLOSED = ("resolved", "declined", "cancelled")


class InboxError(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    dispatch: Dispatch
    state: str
    received_at: str
    updated_at: str
    note: str | None = None
    reason: str | None = None

    @property
    def dispatch_id(self) -> str:
        return self.dispatch.dispatch_id

    @property
    def open(self) -> bool:
        return self.state not in CLOSED


class Inbox:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(
            "create table if not exists inbox (dispatch_id text primary key, dispatch text not null, "
            "state text not null, received_at text not null, updated_at text not null, note text, reason text)"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def receive(self, dispatch: Dispatch) -> bool:
        """Store a dispatch; False if it was here already (MQTT delivers QoS 1 at least once)."""
        now = timeutil.now_wire()
        with self._lock:
            cursor = self._db.execute(
                "insert or ignore into inbox values (?, ?, 'new', ?, ?, null, null)",
                (dispatch.dispatch_id, dispatch.model_dump_json(), now, now),
            )
            return cursor.rowcount == 1

    def advance(
        self, dispatch_id: str, state: str, note: str | None = None, reason: str | None = None
    ) -> Item:
        item = self.get(dispatch_id)
        if item is None:
            raise InboxError(f"no dispatch {dispatch_id} in the inbox")
        if not item.open:
            raise InboxError(f"this dispatch is already {item.state}")
        if state == "declined":
            if not reason:
                raise InboxError("say why you decline")
            if item.state == "on_scene":
                raise InboxError("you are on scene: resolve it instead of declining")
        elif state == "cancelled":
            pass
        elif state not in STEPS or STEPS.index(state) <= STEPS.index(item.state):
            raise InboxError(f"cannot go from {item.state} to {state}")
        if state == "resolved" and not note:
            raise InboxError("a resolved dispatch needs a short protocol note")
        with self._lock:
            self._db.execute(
                "update inbox set state = ?, updated_at = ?, note = coalesce(?, note), "
                "reason = coalesce(?, reason) where dispatch_id = ?",
                (state, timeutil.now_wire(), note, reason, dispatch_id),
            )
        return self.get(dispatch_id)

    def get(self, dispatch_id: str) -> Item | None:
        with self._lock:
            row = self._db.execute("select * from inbox where dispatch_id = ?", (dispatch_id,)).fetchone()
        return _item(row) if row else None

    def items(self, limit: int = 50) -> list[Item]:
        """Open dispatches first (newest first), then recently closed ones."""
        with self._lock:
            rows = self._db.execute(
                "select * from inbox order by state in ('resolved', 'declined', 'cancelled'), received_at desc "
                "limit ?",
                (limit,),
            ).fetchall()
        return [_item(r) for r in rows]

    def current(self) -> Item | None:
        """The dispatch the officer is working on: the oldest open one."""
        with self._lock:
            row = self._db.execute(
                "select * from inbox where state not in ('resolved', 'declined', 'cancelled') "
                "order by received_at limit 1"
            ).fetchone()
        return _item(row) if row else None


def _item(row) -> Item:
    dispatch_id, dispatch, state, received_at, updated_at, note, reason = row
    return Item(Dispatch.model_validate_json(dispatch), state, received_at, updated_at, note, reason)
