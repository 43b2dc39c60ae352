"""The append-only audit log: every view of evidence, every assignment and every change, hash-chained.

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of seq, ts, actor, action, target, detail)``, so
editing, deleting or re-ordering any row breaks the chain from that row on and ``verify`` names it.

The chain alone has no secret: someone with the database can edit an entry and recompute every hash after it.
So each entry also carries ``mac = HMAC-SHA256(key, hash)`` with a key central keeps in a file of its own
(``[storage] audit_key_file``, created 0600 on first use, never in the database): without the key an edited
entry cannot be given a valid MAC, and ``verify`` names it. The key file also records the first entry written
with it, so entries from before the key existed (an older database) are reported as such, not as failures.
Removing the newest entries leaves a valid shorter log; a signed checkpoint (``audit-checkpoint``: the head's
sequence number and hash, the count and the time, under an HMAC with the same key) kept elsewhere catches that,
and any change to an entry before it, with ``verify-audit --checkpoint FILE``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flask_babel import gettext

from kuzet.central.auth.audit_rows import postgres_identity, rows_for
from kuzet.shared import timeutil

GENESIS = "0" * 64

KEY_FILE_NAME = "audit.key"  # beside the database unless configured (``[storage] audit_key_file``)
_key_files: dict[str, Path] = {}  # database (its file, or a PostgreSQL identity) -> its audit key file
_keys: dict[str, AuditKey] = {}  # key file -> the key, once read
_keys_lock = threading.Lock()


@dataclass(frozen=True)
class AuditKey:
    secret: bytes
    first_seq: int  # the first entry written with this key; those before it have no MAC

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"kuzet-audit-key-id" + self.secret).hexdigest()[:16]

    def mac(self, message: str) -> str:
        return hmac.new(self.secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def use_key_file(database: str | Path, key_path: str | Path) -> None:
    """Say where the audit key of a database lives (central's ``[storage] audit_key_file``): ``database`` is
    the SQLite file, or a ``postgresql://`` URL (there the key file must be configured: it never lives on the
    database server)."""
    text = str(database)
    if text.startswith(("postgresql://", "postgres://")):
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(text)
        name = postgres_identity(info.get("host"), info.get("port"), info.get("dbname"))
    else:
        name = str(Path(database).resolve())
    _key_files[name] = Path(key_path)


def key_path(db) -> Path | None:
    """Where this database's audit key lives (None for a database in memory, or on PostgreSQL when no key
    file was configured)."""
    rows = rows_for(db)
    identity = rows.identity()
    if identity is None:
        return None
    configured = _key_files.get(identity)
    if configured is not None:
        return configured
    folder = rows.default_key_dir()
    return folder / KEY_FILE_NAME if folder is not None else None


def _read_key(path: Path) -> AuditKey:
    data = json.loads(path.read_text())
    secret = bytes.fromhex(data["key"])
    if len(secret) < 32:
        raise ValueError(f"{path}: the audit key is too short")
    return AuditKey(secret, int(data["first_seq"]))


def load_key(db) -> AuditKey | None:
    """The audit key if its file exists (None if not: nothing is created)."""
    path = key_path(db)
    if path is None:
        return None
    with _keys_lock:
        cached = _keys.get(str(path))
        if cached is not None and path.exists():
            return cached
        if not path.exists():
            _keys.pop(str(path), None)
            return None
        key = _read_key(path)
        _keys[str(path)] = key
        return key


def ensure_key(db, next_seq: int | None = None) -> AuditKey | None:
    """The audit key, created (0600, exclusively) if there is none yet; entries from ``next_seq`` on (by
    default the next one to be written) are signed with it."""
    key = load_key(db)
    path = key_path(db)
    if key is not None or path is None:
        return key
    if next_seq is None:
        next_seq = rows_for(db).last_seq() + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"key": secrets.token_hex(32), "first_seq": next_seq}).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another writer made it first
        return load_key(db)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    return load_key(db)


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, seq: int, ts: str, actor: str, action: str, target: str, detail: str) -> str:
    body = canonical(
        {"seq": seq, "ts": ts, "actor": actor, "action": action, "target": target, "detail": detail}
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@contextmanager
def transaction(db) -> Iterator[None]:
    """A write transaction that takes the log's write lock up front, so two writers cannot chain onto the same
    row. Nested use joins the outer transaction."""
    with rows_for(db).appending():
        yield


def append(db, actor: str, action: str, target: str, detail: dict) -> int:
    """Add one entry to the chain; returns its sequence number. ``db``: a sqlite-utils database or a psycopg
    connection (``audit_rows``)."""
    rows = rows_for(db)
    with rows.appending():
        rows.prepare()
        head = rows.head()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
        key = ensure_key(rows, seq)
        ts = timeutil.now_wire()
        detail_text = canonical(detail)
        digest = row_hash(prev_hash, seq, ts, actor, action, target, detail_text)
        mac = key.mac(digest) if key else None
        rows.insert([seq, ts, actor, action, target, detail_text, prev_hash, digest, mac])
    return seq


@dataclass
class Report:
    """What ``check`` found. ``first_bad``: the first entry that cannot be trusted (None: all verified)."""

    count: int = 0
    chain_break: int | None = None  # the first entry that does not chain (hash or link)
    bad_mac: int | None = None  # the first entry whose MAC is missing or wrong where the key says it must be
    unkeyed: int = 0  # entries written before the audit key existed: chain checked, no MAC
    key_missing: bool = False  # entries carry MACs but the key file is gone: they cannot be checked
    checkpoint: str | None = None  # what a checkpoint check found wrong, or None
    problems: list[str] = field(default_factory=list)

    @property
    def first_bad(self) -> int | None:
        found = [seq for seq in (self.chain_break, self.bad_mac) if seq is not None]
        return min(found) if found else None

    @property
    def ok(self) -> bool:
        return self.first_bad is None and not self.key_missing and self.checkpoint is None


def _mac_ok(key: AuditKey | None, seq: int, digest: str, mac: str | None) -> bool:
    if key is None or seq < key.first_seq:
        return True
    return mac is not None and hmac.compare_digest(key.mac(digest), mac)


def check(db, checkpoint: dict | None = None) -> Report:
    """Walk the chain from the start, checking each entry's hash, its link, and its MAC with the audit key;
    with ``checkpoint`` (see ``make_checkpoint``) also that the log still holds what the checkpoint saw."""
    report = Report()
    key = load_key(db)
    expected_prev, expected_seq = GENESIS, 1
    hashes: dict[int, str] = {}
    for seq, ts, actor, action, target, detail, prev_hash, digest, mac in rows_for(db).all():
        report.count += 1
        if report.chain_break is None:
            if seq != expected_seq or prev_hash != expected_prev:
                report.chain_break = expected_seq if seq > expected_seq else seq
            elif row_hash(prev_hash, seq, ts, actor, action, target, detail) != digest:
                report.chain_break = seq
        if key is None:
            if mac is not None:
                report.key_missing = True
            report.unkeyed += 1
        elif seq < key.first_seq:
            report.unkeyed += 1
            if mac is not None:  # signed with an earlier key, which is gone
                report.key_missing = True
        elif report.bad_mac is None and not _mac_ok(key, seq, digest, mac):
            report.bad_mac = seq
        if checkpoint is not None and seq <= checkpoint.get("head_seq", 0):
            hashes[seq] = digest
        expected_prev, expected_seq = digest, seq + 1
    if report.chain_break is not None:
        report.problems.append(f"the hash chain breaks at entry {report.chain_break}")
    if report.bad_mac is not None:
        report.problems.append(
            f"entry {report.bad_mac} fails its MAC (audit key): it was changed, or its hashes were recomputed,"
            " without the key"
        )
    if report.key_missing:
        report.problems.append(
            f"entries carry MACs from an audit key that is missing (expected in {key_path(db)}): they cannot"
            " be checked"
        )
    if checkpoint is not None:
        report.checkpoint = _check_checkpoint(key, checkpoint, hashes)
        if report.checkpoint:
            report.problems.append(report.checkpoint)
    return report


def verify(db) -> tuple[bool, int | None]:
    """Walk the chain from the start; returns (True, None) or (False, the first sequence number that fails):
    the first that does not chain, else the first whose MAC is wrong."""
    report = check(db)
    if report.chain_break is not None:
        return False, report.chain_break
    if report.bad_mac is not None:
        return False, report.bad_mac
    if report.key_missing:
        return False, None
    return True, None


def _checkpoint_body(checkpoint: dict) -> str:
    return canonical({k: v for k, v in checkpoint.items() if k != "mac"})


def make_checkpoint(db) -> dict:
    """The log's head, count and the time under an HMAC with the audit key; kept elsewhere (another machine,
    paper), it lets ``check`` tell that entries up to the head were neither removed nor changed."""
    key = ensure_key(db)
    if key is None:
        raise ValueError("a database in memory has no audit key")
    rows = rows_for(db)
    head_seq, head_hash = rows.head() or (0, GENESIS)
    count = rows.count_upto(head_seq)
    checkpoint = {
        "kind": "kuzet-audit-checkpoint",
        "head_seq": head_seq,
        "head_hash": head_hash,
        "count": count,
        "ts": timeutil.now_wire(),
        "key_id": key.key_id,
    }
    checkpoint["mac"] = key.mac(_checkpoint_body(checkpoint))
    return checkpoint


def _check_checkpoint(key: AuditKey | None, checkpoint: dict, hashes: dict[int, str]) -> str | None:
    if checkpoint.get("kind") != "kuzet-audit-checkpoint":
        return "the checkpoint file is not an audit checkpoint"
    if key is None:
        return "the checkpoint cannot be checked: there is no audit key"
    if checkpoint.get("key_id") != key.key_id or not hmac.compare_digest(
        key.mac(_checkpoint_body(checkpoint)), str(checkpoint.get("mac", ""))
    ):
        return (
            "the checkpoint's signature is not valid for this audit key: it was altered or is from elsewhere"
        )
    head_seq, head_hash = checkpoint["head_seq"], checkpoint["head_hash"]
    if head_seq and hashes.get(head_seq) is None:
        return f"entry {head_seq}, the head at the checkpoint of {checkpoint['ts']}, is gone: entries were removed"
    if head_seq and hashes[head_seq] != head_hash:
        return (
            f"entries up to {head_seq} are not what the checkpoint of {checkpoint['ts']} saw: an entry at or"
            " before it was changed or removed and the chain recomputed"
        )
    if len(hashes) != checkpoint["count"]:
        return f"the checkpoint counted {checkpoint['count']} entries up to {head_seq}; now there are {len(hashes)}"
    return None


def intact(db, seqs: set[int]) -> bool:
    """Whether these entries are as they were written: each one's hash matches its content and it chains to
    the entries on either side. For relying on a few entries of a long log without walking all of it
    (``verify`` does that)."""
    rows = rows_for(db)
    key = load_key(rows)
    for seq in seqs:
        around = {row[0]: row for row in rows.between(seq - 1, seq + 1)}
        if seq not in around:
            return False
        _, ts, actor, action, target, detail, prev_hash, digest, mac = around[seq]
        if row_hash(prev_hash, seq, ts, actor, action, target, detail) != digest:
            return False
        if not _mac_ok(key, seq, digest, mac):
            return False
        before, after = around.get(seq - 1), around.get(seq + 1)
        if prev_hash != (before[7] if before else GENESIS if seq == 1 else None):
            return False
        if after is not None and after[6] != digest:
            return False
    return True


def entries(
    db,
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
    rows = []
    for seq, ts, row_actor, row_action, row_target, detail, digest in rows_for(db).select(
        where, params, limit
    ):
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
    """``kuzet central verify-audit [--checkpoint FILE]``: exit 0 if intact, 1 if not."""
    db = central.db()
    checkpoint = None
    checkpoint_file = getattr(args, "checkpoint", None)
    if checkpoint_file:
        try:
            checkpoint = json.loads(Path(checkpoint_file).read_text())
        except (OSError, ValueError) as exc:
            print(
                gettext(
                    "verify-audit: cannot read the checkpoint %(file)s: %(error)s",
                    file=checkpoint_file,
                    error=exc,
                ),
                file=sys.stderr,
            )
            return 2
    report = check(db, checkpoint)
    if report.ok:
        keyed = report.count - report.unkeyed
        print(
            gettext(
                "audit log intact: %(count)s entries, hash chain verified from the first to the last;"
                " %(keyed)s MACs verified with the audit key",
                count=report.count,
                keyed=keyed,
            )
        )
        if report.unkeyed:
            print(
                gettext(
                    "note: %(count)s entries were written before the audit key existed"
                    " (their hash chain is checked; they carry no MAC)",
                    count=report.unkeyed,
                )
            )
        if checkpoint is not None:
            print(
                gettext(
                    "checkpoint of %(when)s matches: entries 1-%(head)s unchanged",
                    when=checkpoint["ts"],
                    head=checkpoint["head_seq"],
                )
            )
        return 0
    first = report.first_bad
    untrusted = (
        gettext("entries from entry %(first)s on cannot be trusted", first=first)
        if first is not None
        else gettext("entries cannot be trusted")
    )
    print(
        gettext(
            "AUDIT LOG TAMPERED: %(problems)s. %(count)s entries; %(untrusted)s. Preserve the database file and"
            " the audit key for investigation.",
            problems="; ".join(report.problems),
            count=report.count,
            untrusted=untrusted,
        ),
        file=sys.stderr,
    )
    return 1


def checkpoint_command(central, args) -> int:
    """``kuzet central audit-checkpoint --out FILE``: write a signed checkpoint of the log's head."""
    checkpoint = make_checkpoint(central.db())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(checkpoint, indent=2) + "\n")
    print(
        gettext(
            "audit checkpoint written to %(file)s: %(count)s entries, head %(head)s %(hash)s...; keep it away"
            " from central (another machine, off-site)",
            file=out,
            count=checkpoint["count"],
            head=checkpoint["head_seq"],
            hash=checkpoint["head_hash"][:16],
        )
    )
    return 0
