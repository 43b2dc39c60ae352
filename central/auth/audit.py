"""The append-only audit log: every view of evidence, every assignment and every change, hash-chained.

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of seq, ts, actor, action, target, detail)``, so
editing, deleting or re-ordering any row breaks the chain from that row on and ``verify`` names it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

from kuzet.shared import timeutil

GENESIS = "0" * 64
# Ordinary SQL cannot change or remove an entry. Someone with the database file can drop these; the hash
# chain is what then tells.
_APPEND_ONLY = [
    f"CREATE TRIGGER IF NOT EXISTS audit_no_{verb.lower()} BEFORE {verb} ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, seq: int, ts: str, actor: str, action: str, target: str, detail: str) -> str:
    body = canonical(
        {"seq": seq, "ts": ts, "actor": actor, "action": action, "target": target, "detail": detail}
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """A write transaction that takes the write lock up front, so two writers cannot chain onto the same
    row. Nested use joins the outer transaction."""
    conn = db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def append(db: sqlite_utils.Database, actor: str, action: str, target: str, detail: dict) -> int:
    """Add one entry to the chain; returns its sequence number."""
    with transaction(db):
        for statement in _APPEND_ONLY:
            db.execute(statement)
        last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        ts = timeutil.now_wire()
        detail_text = canonical(detail)
        digest = row_hash(prev_hash, seq, ts, actor, action, target, detail_text)
        db.execute(
            "INSERT INTO audit (seq, ts, actor, action, target, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, ts, actor, action, target, detail_text, prev_hash, digest],
        )
    return seq


def verify(db: sqlite_utils.Database) -> tuple[bool, int | None]:
    """Walk the chain from the start; returns (True, None) or (False, the first sequence number that fails)."""
    expected_prev, expected_seq = GENESIS, 1
    cursor = db.execute(
        "SELECT seq, ts, actor, action, target, detail, prev_hash, hash FROM audit ORDER BY seq"
    )
    for seq, ts, actor, action, target, detail, prev_hash, digest in cursor:
        if seq != expected_seq or prev_hash != expected_prev:
            return False, expected_seq if seq > expected_seq else seq
        if row_hash(prev_hash, seq, ts, actor, action, target, detail) != digest:
            return False, seq
        expected_prev, expected_seq = digest, seq + 1
    return True, None


def intact(db: sqlite_utils.Database, seqs: set[int]) -> bool:
    """Whether these entries are as they were written: each one's hash matches its content and it chains to
    the entries on either side. For relying on a few entries of a long log without walking all of it
    (``verify`` does that)."""
    for seq in seqs:
        rows = db.execute(
            "SELECT seq, ts, actor, action, target, detail, prev_hash, hash FROM audit"
            " WHERE seq BETWEEN ? AND ?",
            [seq - 1, seq + 1],
        )
        around = {row[0]: row for row in rows}
        if seq not in around:
            return False
        _, ts, actor, action, target, detail, prev_hash, digest = around[seq]
        if row_hash(prev_hash, seq, ts, actor, action, target, detail) != digest:
            return False
        before, after = around.get(seq - 1), around.get(seq + 1)
        if prev_hash != (before[7] if before else GENESIS if seq == 1 else None):
            return False
        if after is not None and after[6] != digest:
            return False
    return True


def entries(
    db: sqlite_utils.Database,
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    before_seq: int | None = None,
    limit: int = 200,
) -> list[dict]:
    """Newest first, optionally for one target, actor or action; ``before_seq`` pages back."""
    where, params = [], []
    for column, value in (("target", target), ("actor", actor), ("action", action)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if before_seq:
        where.append("seq < ?")
        params.append(before_seq)
    sql = "SELECT seq, ts, actor, action, target, detail, hash FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?"
    params.append(limit)
    rows = []
    for seq, ts, row_actor, row_action, row_target, detail, digest in db.execute(sql, params):
        rows.append(
            {
                "seq": seq,
                "ts": ts,
                "actor": row_actor,
                "action": row_action,
                "target": row_target,
                "detail": json.loads(detail),
                "hash": digest,
            }
        )
    return rows


def verify_command(central, args) -> int:
    db = central.db()
    ok, bad_seq = verify(db)
    count = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    if ok:
        print(f"audit log intact: {count} entries, hash chain verified from the first to the last")
        return 0
    print(
        f"AUDIT LOG TAMPERED: the hash chain breaks at entry {bad_seq} of {count}; entries from {bad_seq} on"
        " cannot be trusted. Preserve the database file for investigation.",
        file=sys.stderr,
    )
    return 1
