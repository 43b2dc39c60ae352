"""The ``events``/``event_updates`` write side on PostgreSQL, with the behaviour of ``central.store.events``
(SQLite): idempotent by message id, the newest ``seq`` wins, the operators' columns untouched, media
references kept when an update leaves them out.

What differs is how it is made safe with several ingest workers writing at once and with ``events``
partitioned by month (migration 0001): there is no unique key on ``event_id`` alone, so a new event first
claims its id in ``event_keys`` (``ON CONFLICT DO NOTHING ... RETURNING``); the worker whose claim came back
inserts the row, and a worker that lost the race updates it like any known event. Rows go in batches
(psycopg's pipelined ``executemany``), each statement idempotent, so a batch redelivered after a crash
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kuzet.central.store.events import (
    EDGE_COLUMNS,
    KEEP_ALWAYS,
    KEEP_IF_NULL,
    TIMELINE_COLUMNS,
    Applied,
    Received,
    decode_row,
    plan_batch,
)
from kuzet.central.store.schema import TABLES

_INSERT_TIMELINE = (
    f"INSERT INTO event_updates ({', '.join(TIMELINE_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(TIMELINE_COLUMNS))}) ON CONFLICT (msg_id) DO NOTHING"
)
_CLAIM = (
    "INSERT INTO event_keys (event_id, received_at) SELECT * FROM unnest(%s::text[], %s::text[]) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EDGE_COLUMNS)}) VALUES ({', '.join(['%s'] * len(EDGE_COLUMNS))}) "
    "ON CONFLICT DO NOTHING"
)
_UPDATED = [c for c in EDGE_COLUMNS if c not in KEEP_ALWAYS]
_UPDATE_EVENT = (
    "UPDATE events SET "
    + ", ".join(f"{c} = coalesce(%s, {c})" if c in KEEP_IF_NULL else f"{c} = %s" for c in _UPDATED)
    + " WHERE event_id = %s AND seq < %s"
)
_SEQ = EDGE_COLUMNS.index("seq")
_RECEIVED_AT = EDGE_COLUMNS.index("received_at")
# A new row's columns that the insert leaves out, at their defaults (the schema's, as on SQLite).
_DEFAULTS = {column: None for column in TABLES["events"]["columns"]} | TABLES["events"]["defaults"]


def apply(conn, batch: Sequence[Received]) -> Applied:
    """Store a batch of event messages (in arrival order) inside the caller's transaction (``conn``: psycopg)."""
    # Both asked before either is read: one round trip in pipeline mode (ingest's).
    stored = conn.execute(
        "SELECT msg_id FROM event_updates WHERE msg_id = ANY(%s)", [list({r.message.id for r in batch})]
    )
    seqs = conn.execute(
        "SELECT event_id, seq FROM events WHERE event_id = ANY(%s)",
        [list({r.message.event_id for r in batch})],
    )
    stored_ids = {row[0] for row in stored.fetchall()}
    stored_seq = dict(seqs.fetchall())
    plan = plan_batch(batch, stored_ids, stored_seq)
    result = plan.result
    # Rows are written in key order: two workers with overlapping batches then take their row locks in the
    # same order and wait for each other instead of deadlocking.
    new_ids = result.new_event_ids
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_TIMELINE, sorted(plan.timeline))
        won: set[str] = set()
        if new_ids:
            claims = sorted(new_ids)
            received = [plan.event_rows[e][_RECEIVED_AT] for e in claims]
            won = {row[0] for row in cursor.execute(_CLAIM, [claims, received]).fetchall()}
            cursor.executemany(_INSERT_EVENT, [plan.event_rows[e] for e in claims if e in won])
        updates = [_update_args(plan.event_rows[e]) for e in sorted(plan.event_rows) if e not in won]
        cursor.executemany(_UPDATE_EVENT, updates)
    result.new_event_ids = [e for e in new_ids if e in won]  # another worker's new event is an update here
    for event_id in result.new_event_ids:
        result.created_rows[event_id] = decode_row(
            _DEFAULTS | dict(zip(EDGE_COLUMNS, plan.event_rows[event_id], strict=True))
        )
    return result


def _update_args(row: tuple) -> list:
    values = dict(zip(EDGE_COLUMNS, row, strict=True))
    return [values[c] for c in _UPDATED] + [values["event_id"], row[_SEQ]]


def rows(conn, event_ids: Iterable[str]) -> list[dict]:
    cursor = conn.execute("SELECT * FROM events WHERE event_id = ANY(%s)", [list(dict.fromkeys(event_ids))])
    names = [d.name for d in cursor.description]
    return [decode_row(dict(zip(names, row, strict=True))) for row in cursor]
