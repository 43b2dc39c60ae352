"""An event answered at chosen moments, through the real rows (audit entries, dispatches, dispatch log), for the
tests of shifts and response times."""

from __future__ import annotations

from datetime import datetime, timedelta

from kuzet.central.auth import audit
from kuzet.shared import ids, timeutil
from support.web import insert_row, store_event


def _at(base: datetime, seconds: float) -> str:
    return timeutil.to_wire(base + timedelta(seconds=seconds))


def _audit_at(db, ts: str, actor: str, action: str, target: str) -> None:
    """A real audit entry (chained, signed) written as if at ``ts``."""
    real = timeutil.now_wire
    timeutil.now_wire = lambda: ts
    try:
        audit.append(db, actor, action, target, {})
    finally:
        timeutil.now_wire = real


def respond(db, base, ack_s, sent_s, unit_ack_s, on_scene_s, close_s, unit="p-1", actor="operator"):
    """An event received at ``base``, answered as the seconds say (None: never), through real rows on either
    store's connection ``db``."""
    event = store_event(db, received_at=_at(base, 0), started_at=_at(base, -5))
    target = f"event:{event['event_id']}"
    if ack_s is not None:
        _audit_at(db, _at(base, ack_s), actor, "event.acknowledge", target)
    if close_s is not None:
        _audit_at(db, _at(base, close_s), actor, "event.close", target)
    if sent_s is not None:
        dispatch_id = ids.new_id()
        insert_row(
            db,
            "dispatches",
            {
                "dispatch_id": dispatch_id,
                "event_id": event["event_id"],
                "unit": unit,
                "state": "resolved",
                "created_at": _at(base, sent_s),
            },
        )
        for state, seconds in (("sent", sent_s), ("acknowledged", unit_ack_s), ("on_scene", on_scene_s)):
            if seconds is not None:
                insert_row(
                    db, "dispatch_log", {"dispatch_id": dispatch_id, "state": state, "at": _at(base, seconds)}
                )
    return event
