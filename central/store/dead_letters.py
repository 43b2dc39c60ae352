"""The ``dead_letters`` table: messages that broke the contract (or could not be stored), kept for inspection
with the reason, so that a misbehaving device can be diagnosed without losing what it sent."""

from __future__ import annotations

from kuzet.central.store import portable


def add(conn, topic: str, payload: bytes, reason: str, received_at: str, keep_bytes: int) -> int:
    """Keep the first ``keep_bytes`` of a refused message; returns its id. ``conn``: either store's connection
    (``portable``)."""
    cursor = portable.execute(
        conn,
        "INSERT INTO dead_letters (topic, payload, payload_size, reason, received_at) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id",
        (topic, bytes(payload[:keep_bytes]), len(payload), reason, received_at),
    )
    return int(cursor.fetchone()[0])
