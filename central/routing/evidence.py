"""Badge body-camera evidence at central: each announced segment is checked against the one before it as it
arrives, and a badge's whole chain can be verified against the recordings central holds.

Retention removes old segments (``central.store.retention``) and writes each one's chain record to the audit
log. A gap in the chain is accounted for exactly when every missing index has such a record in an intact
audit entry and the records link up: the first to the segment before the gap (or the start of the chain),
each to the one before, and the segment after the gap to the last. Anything else missing is a gap, and an
edited record or recording is a break, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask_babel import gettext

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.central.store.media import MediaStore
from kuzet.central.store.objects import ObjectStore, as_object_store, stored_sha256
from kuzet.shared import evidence, timeutil
from kuzet.shared.evidence import Problem
from kuzet.shared.messages import EvidenceSegment

_COLUMNS = (
    "segment_id, idx, started_at, ended_at, size, sha256, prev_chain_sha256, chain_sha256, content_type"
)
_SEGMENT_COLUMNS = (
    "segment_id, device, idx, started_at, ended_at, size, sha256, prev_chain_sha256, chain_sha256,"
    " content_type, dispatch_id, received_at, chain_ok, problem"
)
# A re-delivered segment replaces its row (sqlite-utils' upsert before); both engines spell it the same.
_UPSERT_SEGMENT = (
    f"INSERT INTO evidence_segments ({_SEGMENT_COLUMNS}) VALUES ({', '.join('?' * 14)})"
    " ON CONFLICT(segment_id) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _SEGMENT_COLUMNS.split(",")[1:])
)


class EvidenceLedger:
    def __init__(self) -> None:
        self._last: dict[str, EvidenceSegment] = {}  # badge -> its latest segment

    def record(self, db, segment: EvidenceSegment) -> evidence.Finding | None:
        """Store the segment's record; return what is wrong with its link to the chain, or None."""
        previous = self._last.get(segment.device)
        if previous is None:
            row = portable.execute(
                db,
                f"select {_COLUMNS} from evidence_segments where device = ? order by idx desc limit 1",
                [segment.device],
            ).fetchone()
            previous = _segment(segment.device, row) if row else None
        if previous is not None and previous.segment_id == segment.segment_id:
            return None  # a re-delivery
        problem = evidence.check_link(segment, previous)
        self._last[segment.device] = segment
        portable.execute(
            db,  # the highest index ever announced, whatever happens to the rows later
            "INSERT INTO evidence_heads (device, idx, segment_id, chain_sha256, received_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET idx = excluded.idx,"
            " segment_id = excluded.segment_id, chain_sha256 = excluded.chain_sha256,"
            " received_at = excluded.received_at WHERE excluded.idx > evidence_heads.idx",
            [segment.device, segment.index, segment.segment_id, segment.chain_sha256, timeutil.now_wire()],
        )
        row = {
            "segment_id": segment.segment_id,
            "device": segment.device,
            "idx": segment.index,
            "started_at": timeutil.to_wire(segment.started_at),
            "ended_at": timeutil.to_wire(segment.ended_at),
            "size": segment.size,
            "sha256": segment.sha256,
            "prev_chain_sha256": segment.prev_chain_sha256,
            "chain_sha256": segment.chain_sha256,
            "content_type": segment.content_type,
            "dispatch_id": segment.dispatch_id,
            "received_at": timeutil.now_wire(),
            "chain_ok": int(problem is None),
            "problem": str(problem) if problem else None,
        }
        portable.execute(db, _UPSERT_SEGMENT, list(row.values()))
        return problem


# Retention's audit entries that list the evidence segments they removed.
RETENTION_ACTIONS = ("retention.delete_events", "retention.delete_dispatches", "retention.delete_evidence")


@dataclass(frozen=True)
class Expired:
    """A segment retention removed, as its audit entry records it: what ``evidence.check_link`` reads."""

    index: int
    segment_id: str
    prev_chain_sha256: str | None
    chain_sha256: str
    sha256: str
    started_at: datetime
    ended_at: datetime


def expired_segments(db, device: str) -> dict[int, Expired]:
    """index -> the badge's segments retention removed, from audit entries that are intact."""
    found: dict[int, Expired] = {}
    seqs: dict[int, int] = {}  # index -> the audit entry it came from
    rows = portable.execute(
        db,
        f"select seq, detail from audit where actor = 'system' and action in ({', '.join('?' * len(RETENTION_ACTIONS))})",
        RETENTION_ACTIONS,
    )
    for seq, detail in rows:
        for record in json.loads(detail).get("evidence_segments", []):
            if record.get("device") != device:
                continue
            try:
                expired = Expired(
                    index=record["index"],
                    segment_id=record["segment_id"],
                    prev_chain_sha256=record["prev_chain_sha256"],
                    chain_sha256=record["chain_sha256"],
                    sha256=record["sha256"],
                    started_at=timeutil.from_wire(record["started_at"]),
                    ended_at=timeutil.from_wire(record["ended_at"]),
                )
            except (KeyError, TypeError, ValueError):
                continue  # not a whole chain record: it cannot account for a gap
            found[expired.index], seqs[expired.index] = expired, seq
    if not audit.intact(db, set(seqs.values())):
        # An entry was altered (or its neighbours were): trust only those that still chain.
        good = {seq for seq in set(seqs.values()) if audit.intact(db, {seq})}
        found = {index: e for index, e in found.items() if seqs[index] in good}
    return found


def _link(
    segment, previous, expired: dict[int, Expired]
) -> tuple[evidence.Finding | None, tuple[int, int] | None]:
    """What is wrong with ``segment`` following ``previous`` (the segment central holds before it; None at
    the start), and the span of indexes between them that retention removed, if that accounts for a gap."""
    expected = previous.index + 1 if previous is not None else 0
    if segment.index > expected and all(i in expired for i in range(expected, segment.index)):
        link = previous
        for index in range(expected, segment.index):
            if evidence.check_link(expired[index], link) is not None:
                break
            link = expired[index]
        else:
            return evidence.check_link(segment, link), (expected, segment.index - 1)
    return evidence.check_link(segment, previous), None


def verify_device(db, media_dir: Path | ObjectStore, device: str) -> list[Problem]:
    """Check a badge's whole chain and each recording central received against its recorded hash.
    A segment whose recording has not fully arrived yet is reported as missing; segments retention removed
    (and audited) are not."""
    segments = _segments(db, device)
    findings, _ = _check_chain(
        segments,
        _files(db, segments),
        expired_segments(db, device),
        why_missing=lambda segment: "its recording is missing",
        hash_of=_hasher(media_dir),
    )
    findings += _missing_tail(db, device, segments[-1].index if segments else -1)
    return [Problem(f["index"], f["segment_id"], f["what"]) for f in findings]


def _check_chain(
    segments: list[EvidenceSegment],
    files: dict[str, str],
    expired: dict[int, Expired],
    why_missing: Callable[[EvidenceSegment], str],
    hash_of: Callable[[str], str | None],
) -> tuple[list[dict], list[dict]]:
    """(findings, runs of segments retention removed): each link of the chain in order, and each recording
    central holds against its recorded hash. A finding's ``kind`` is "broken", "gap" or "missing"."""
    findings: list[dict] = []
    spans: list[dict] = []
    previous = None
    for segment in segments:
        what, span = _link(segment, previous, expired)
        if span is not None:
            spans.append({"first": span[0], "last": span[1]})
        if what:
            expected = previous.index + 1 if previous is not None else 0
            # After segments retention removed, only the segment's own record can be at fault.
            kind = "gap" if span is None and segment.index != expected else "broken"
            findings.append(_finding(segment, kind, what))
        stored = files.get(segment.segment_id)
        digest = hash_of(stored) if stored is not None else None
        if digest is None:
            findings.append(_finding(segment, "missing", why_missing(segment)))
        elif digest != segment.sha256:
            findings.append(_finding(segment, "broken", evidence.Finding("recording_edited")))
        previous = segment
    return findings, spans


def _segment(device: str, row) -> EvidenceSegment:
    segment_id, idx, started_at, ended_at, size, sha, prev, chain, content_type = row
    return EvidenceSegment(
        device=device,
        segment_id=segment_id,
        index=idx,
        started_at=timeutil.from_wire(started_at),
        ended_at=timeutil.from_wire(ended_at),
        size=size,
        sha256=sha,
        prev_chain_sha256=prev,
        chain_sha256=chain,
        content_type=content_type,
    )


def chain_report(db, media_dir: Path | ObjectStore, device: str) -> dict:
    """The whole chain of a badge checked, for people: ``status`` is "verified", "broken" (a record or
    recording was altered, ``broken_at`` the first index), "gap" (segments missing, ``gap_at``),
    "incomplete" (recordings not received yet) or "empty"; ``problems`` lists each finding, ``expired``
    each run of segments (``first``, ``last``) retention removed, which is no problem."""
    segments = _segments(db, device)
    files = _files(db, segments)
    problems, spans = _check_chain(
        segments,
        files,
        expired_segments(db, device),
        why_missing=lambda segment: _why_missing(db, segment.segment_id),
        hash_of=_hasher(media_dir),
    )
    problems += _missing_tail(db, device, segments[-1].index if segments else -1)
    first = {
        kind: next((p["index"] for p in problems if p["kind"] == kind), None) for kind in ("broken", "gap")
    }
    if not segments:
        status = "empty"
    elif first["broken"] is not None:
        status = "broken"
    elif first["gap"] is not None:
        status = "gap"
    elif problems:
        status = "incomplete"
    else:
        status = "verified"
    return {
        "device": device,
        "status": status,
        "segments": len(segments),
        "first_index": segments[0].index if segments else None,
        "last_index": segments[-1].index if segments else None,
        "recordings": len(files),
        "broken_at": first["broken"],
        "gap_at": first["gap"],
        "expired": spans,
        "problems": problems,
        "checked_at": timeutil.now_wire(),
    }


def _missing_tail(db, device: str, last_held: int) -> list[dict]:
    """Segments after the last one central holds that the badge announced: their records arrived and are gone
    ("gap": deleted), or its heartbeat says it sealed them and they have not arrived ("missing": on the way,
    or never sent). Gaps inside the chain show in its links; only the newest end needs this."""
    head = portable.execute(
        db, "select idx, segment_id from evidence_heads where device = ?", [device]
    ).fetchone()
    if head is not None and head[0] > last_held:
        what = (
            f"segments {last_held + 1}..{head[0]} were received (the newest {head[1]}) "
            "and are no longer held: the end of the chain was deleted"
        )
        return [{"index": last_held + 1, "segment_id": head[1], "kind": "gap", "what": what}]
    status = portable.execute(db, "select status from devices where device_id = ?", [device]).fetchone()
    sealed = (
        json.loads(status[0]).get("counters", {}).get("evidence_sealed") if status and status[0] else None
    )
    if isinstance(sealed, int) and sealed - 1 > last_held:
        what = f"the badge reports segments up to {sealed - 1} sealed; {last_held + 1}.. have not arrived"
        return [{"index": last_held + 1, "segment_id": None, "kind": "missing", "what": what}]
    return []


def _why_missing(db, segment_id: str) -> str:
    found = portable.rows(db, "select * from clips where clip_id = ?", [segment_id])
    if not found:
        return "its recording has not been received"
    clip = found[0]
    if clip["state"] == "lost":
        return f"the badge reported its recording lost ({clip.get('lost_reason') or 'no reason given'})"
    if clip["state"] == "verified":
        return "its recording was removed from central's media store"
    if clip["state"] == "expired":
        return "its recording was removed by retention (the media size limit)"
    return (
        f"its recording is {clip['state']} ({clip.get('received') or 0} of {clip.get('count') or '?'} parts)"
    )


def _finding(segment: EvidenceSegment, kind: str, what: evidence.Finding | str) -> dict:
    """A finding for people; one of shared/evidence.py's also keeps its ``code`` and ``params`` (said in the
    reader's language by the page: ``evidence_<code>`` of central/alerts.py)."""
    found = {"index": segment.index, "segment_id": segment.segment_id, "kind": kind, "what": str(what)}
    if isinstance(what, evidence.Finding):
        found.update(code=what.code, params=what.params)
    return found


def _segments(db, device: str) -> list[EvidenceSegment]:
    rows = portable.execute(
        db, f"select {_COLUMNS} from evidence_segments where device = ? order by idx", [device]
    )
    return [_segment(device, row) for row in rows]


def _hasher(media: Path | ObjectStore) -> Callable[[str], str | None]:
    """The SHA-256 of the bytes stored under a name, in the media folder or the object store; None when
    nothing is stored under it."""
    objects = as_object_store(media)
    return lambda sha256: stored_sha256(objects, sha256)


def _files(db, segments: list[EvidenceSegment]) -> dict[str, str]:
    """segment_id -> the SHA-256 of the recording central holds for it (fully received and checked on
    arrival)."""
    files = {}
    for segment in segments:
        clip = portable.execute(
            db, "select sha256 from clips where clip_id = ? and state = 'verified'", [segment.segment_id]
        ).fetchone()
        if clip is not None:
            files[segment.segment_id] = clip[0]
    return files


def verify_command(central, args) -> int:
    """``kuzet central verify-evidence DEVICE``: exit 0 when the badge's chain and recordings verify."""
    import getpass
    import json

    from kuzet.central.auth import audit

    db = central.db()
    report = chain_report(db, MediaStore.for_central(central).objects, args.device)
    audit.append(
        db, f"cli:{getpass.getuser()}", "evidence.verify", f"device:{args.device}", audit_detail(report)
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(describe(report))
        for problem in report["problems"]:
            print("  " + gettext("segment %(index)s (%(segment_id)s): %(kind)s: %(what)s", **problem))
    return 0 if report["status"] == "verified" else 1


def describe(report: dict) -> str:
    """One line an operator or a court clerk can read, in the reader's language (the device page, the CLI)."""
    device, n = report["device"], report["segments"]
    span = (
        gettext("segments %(first)s-%(last)s", first=report["first_index"], last=report["last_index"])
        if n
        else ""
    )
    missing = sum(1 for p in report["problems"] if p["kind"] == "missing")
    expired = ", ".join(f"{s['first']}..{s['last']}" for s in report.get("expired", []))
    status = report["status"]
    if status == "empty":
        return gettext("%(device)s: no evidence segments received", device=device)
    if status == "verified" and expired:
        return gettext(
            "%(device)s: chain verified (segments %(expired)s expired by retention), %(n)s %(span)s, every"
            " recording matches its hash",
            device=device,
            expired=expired,
            n=n,
            span=span,
        )
    if status == "verified":
        return gettext(
            "%(device)s: chain verified, %(n)s %(span)s, every recording matches its hash",
            device=device,
            n=n,
            span=span,
        )
    if status == "broken":
        return gettext(
            "%(device)s: chain BROKEN at segment %(at)s (%(span)s)",
            device=device,
            at=report["broken_at"],
            span=span,
        )
    if status == "gap":
        return gettext(
            "%(device)s: GAP in the chain at segment %(at)s (%(span)s)",
            device=device,
            at=report["gap_at"],
            span=span,
        )
    return gettext(
        "%(device)s: chain intact (%(span)s); %(missing)s recording(s) not received yet",
        device=device,
        span=span,
        missing=missing,
    )


def audit_detail(report: dict) -> dict:
    return {key: report[key] for key in ("status", "segments", "broken_at", "gap_at", "expired")}
