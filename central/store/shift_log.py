"""The shift log: what operators write for each other during a shift and at hand-over. An entry is never
edited or removed; each is written to the audit log in the same transaction."""

from __future__ import annotations

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.shared import timeutil

KINDS = ("note", "handover")
MAX_TEXT = 4000


class ShiftLogError(ValueError):
    pass


def add(db, author: str, kind: str, text: str) -> dict:
    """Store an entry by ``author``; ShiftLogError (nothing stored) for an unknown kind or an empty or
    over-long text."""
    text = (text or "").strip()
    if kind not in KINDS:
        raise ShiftLogError(f"the kind of entry is one of {', '.join(KINDS)}, not {kind!r}")
    if not text:
        raise ShiftLogError("the entry is empty")
    if len(text) > MAX_TEXT:
        raise ShiftLogError(f"the entry is {len(text)} characters long; at most {MAX_TEXT}")
    with audit.transaction(db):
        at = timeutil.now_wire()
        entry_id = portable.row(
            db,
            "INSERT INTO shift_log (at, author, kind, text) VALUES (?, ?, ?, ?) RETURNING id",
            [at, author, kind, text],
        )["id"]
        audit.append(db, author, f"shift.{kind}", f"shift_log:{entry_id}", {"text": text})
    return {"id": entry_id, "at": at, "author": author, "kind": kind, "text": text}


def entries(db, since: str, until: str) -> list[dict]:
    """Entries written in [since, until) (UTC wire times), newest first."""
    return portable.rows(
        db,
        "SELECT id, at, author, kind, text FROM shift_log WHERE at >= ? AND at < ? ORDER BY id DESC",
        [since, until],
    )


# What counts as an operator's work on an incident, in the audit log.
_WORK = ("event.acknowledge", "event.assign", "event.dispatched", "event.close")


def my_incidents(db, actor: str, since: str, until: str) -> list[dict]:
    """The events ``actor`` acknowledged, assigned, dispatched (or acted on a dispatch of) or closed in
    [since, until), most recent work first: each event's row with "actions": [{"action", "ts"}] oldest first."""
    rows = portable.rows(
        db,
        f"""SELECT a.ts, a.action, coalesce(d.event_id, substr(a.target, 7)) AS event_id
        FROM audit a LEFT JOIN dispatches d ON a.action LIKE 'dispatch.%' AND d.dispatch_id = a.target
        WHERE a.actor = ? AND a.ts >= ? AND a.ts < ?
          AND (a.action IN ({", ".join("?" * len(_WORK))}) OR a.action LIKE 'dispatch.%')
        ORDER BY a.seq""",
        [actor, since, until, *_WORK],
    )
    actions: dict[str, list[dict]] = {}
    for row in rows:
        if row["event_id"]:
            actions.setdefault(row["event_id"], []).append({"action": row["action"], "ts": row["ts"]})
    if not actions:
        return []
    marks = ", ".join("?" * len(actions))
    events = {
        row["event_id"]: row
        for row in portable.rows(
            db,
            "SELECT event_id, device, event_type, severity, status, zone, received_at, dispatched_unit"
            f" FROM events WHERE event_id IN ({marks})",
            list(actions),
        )
    }
    found = [
        {**events[event_id], "actions": done} for event_id, done in actions.items() if event_id in events
    ]
    return sorted(found, key=lambda event: event["actions"][-1]["ts"], reverse=True)
