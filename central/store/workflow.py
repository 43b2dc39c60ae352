"""The operators' side of an event: acknowledge, assign, close with a note, and hold its evidence.

Each change and its audit entry are written in one transaction, so there is never a change without a record.
"""

from __future__ import annotations

from collections.abc import Callable

from kuzet.central.auth import audit
from kuzet.central.store import portable, queries
from kuzet.shared import timeutil

MAX_NOTE = 2000


class WorkflowError(ValueError):
    """The change is not allowed in the event's current state; the message says why."""


class NotFound(LookupError):
    pass


def _change(
    db,
    event_id: str,
    actor: str,
    action: str,
    decide: Callable[[dict], dict],
    detail: dict,
) -> dict:
    """``decide(event)`` returns the columns to change, or raises WorkflowError; it sees the event as it is
    inside the write transaction, so two operators acting at once cannot both pass the same check."""
    with audit.transaction(db):
        event = queries.get_event(db, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}")
        changes = {**decide(event), "updated_at": timeutil.now_wire()}
        assignments = ", ".join(f"{column} = ?" for column in changes)
        portable.execute(
            db, f"UPDATE events SET {assignments} WHERE event_id = ?", [*changes.values(), event_id]
        )
        audit.append(db, actor, action, f"event:{event_id}", {"from": event["status"], **detail})
    return queries.with_changes(event, changes)


def _refuse_closed(event: dict) -> None:
    if event["status"] == "closed":
        raise WorkflowError("the event is closed")


def acknowledge(db, event_id: str, actor: str) -> dict:
    def decide(event):
        if event["status"] != "new":
            raise WorkflowError(f"the event is already {event['status']}")
        return {"status": "acknowledged"}

    return _change(db, event_id, actor, "event.acknowledge", decide, {})


def assign(db, event_id: str, actor: str, assignee: str) -> dict:
    """Make a person (an operator, a supervisor) responsible for following the event up."""
    assignee = assignee.strip()
    if not assignee:
        raise WorkflowError("say whom to assign the event to")
    if not list(portable.rows(db, "SELECT 1 FROM users WHERE username = ? AND disabled = 0", [assignee])):
        raise WorkflowError(f"no active account {assignee!r}")

    def decide(event):
        _refuse_closed(event)
        # A dispatched event stays "dispatched": a patrol is on it, whoever follows it up.
        status = "dispatched" if event["status"] == "dispatched" else "assigned"
        return {"status": status, "assigned_to": assignee}

    return _change(db, event_id, actor, "event.assign", decide, {"to": assignee})


def close(db, event_id: str, actor: str, note: str) -> dict:
    note = note.strip()
    if not note:
        raise WorkflowError("closing an event needs a note saying what was done")
    if len(note) > MAX_NOTE:
        raise WorkflowError(f"the note is longer than {MAX_NOTE} characters")

    def decide(event):
        _refuse_closed(event)
        return {"status": "closed", "closed_note": note}

    return _change(db, event_id, actor, "event.close", decide, {"note": note})


def set_hold(db, event_id: str, actor: str, hold: bool) -> dict:
    """Keep (or release) the event's snapshot and clip past the retention period, e.g. for a court case."""
    return _change(
        db, event_id, actor, "event.hold" if hold else "event.release", lambda event: {"hold": int(hold)}, {}
    )


# --- what routing decides (called inside routing's transaction, which these join) --------------------------


def dispatched(db, event_id: str, actor: str, unit: str, detail: dict) -> dict | None:
    """Routing sent ``unit`` to the event; None if there is no such event (an intercept sent to a place)."""
    try:
        return _change(
            db,
            event_id,
            actor,
            "event.dispatched",
            lambda event: {"status": "dispatched", "dispatched_unit": unit},
            {"unit": unit, **detail},
        )
    except NotFound:
        return None


def returned_to_waiting(db, event_id: str, actor: str, detail: dict) -> dict | None:
    """Routing took the event's patrol away (diverted to a more urgent event): it is no longer dispatched and
    waits for a unit again. None if there is no such event or it is closed."""

    def decide(event):
        _refuse_closed(event)
        return {"status": "assigned" if event["assigned_to"] else "acknowledged", "dispatched_unit": None}

    try:
        return _change(db, event_id, actor, "event.returned_to_waiting", decide, detail)
    except (NotFound, WorkflowError):
        return None


def resolved(db, event_id: str, actor: str, note: str, detail: dict) -> dict | None:
    """A patrol resolved the event: it is closed with the officer's note. None if there is no such event or
    it is already closed (an operator closed it first)."""

    def decide(event):
        _refuse_closed(event)
        return {"status": "closed", "closed_note": note}

    try:
        return _change(db, event_id, actor, "event.close", decide, {"note": note, **detail})
    except (NotFound, WorkflowError):
        return None
