"""Device commands and badge evidence records on both stores (SQLite, PostgreSQL): a command is recorded and
audited, its one answer kept, a different second answer refused and a late copy's "expired" ignored; evidence
segments chain, a re-delivery changes nothing, and a gap in the chain is named."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from support.ingest import new_id

from kuzet.central import commands
from kuzet.central.auth import audit
from kuzet.central.routing import evidence
from kuzet.central.store import portable
from kuzet.shared import messages, timeutil
from kuzet.shared.evidence import chain_hash

START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_a_command_is_recorded_and_answered_once(db):
    command = commands.build("cam-1", "snapshot", {})
    with audit.transaction(db):
        commands.record(db, command, "pavlodar", actor="anna")
    answer = command.answer("cam-1", True, "готово")
    assert commands.record_result(db, answer)["state"] == "ok"
    assert commands.record_result(db, answer)["state"] == "ok"  # a QoS 1 re-delivery
    with pytest.raises(commands.CommandError, match="second, different result"):
        commands.record_result(db, command.answer("cam-1", False, "ошибка"))
    # A copy of the command kept by the other broker reached the device too late: refused unopened.
    late_copy = command.answer("cam-1", False, "expired: sent 900 s ago", {messages.EXPIRED: True})
    kept = commands.record_result(db, late_copy)
    assert (kept["state"], kept["result_message"]) == ("ok", "готово")
    # The device restarted after handing its answer to its outbox and before noting it: its "interrupted"
    # answer comes after the real one and changes nothing.
    restarted = command.answer("cam-1", False, "interrupted: ...", {messages.INTERRUPTED: True})
    assert commands.record_result(db, restarted)["result_message"] == "готово"
    with pytest.raises(commands.CommandError, match="sent to cam-1"):
        commands.record_result(db, command.answer("cam-2", True, "готово"))
    assert [c["command_id"] for c in commands.list_for(db, "cam-1")] == [command.command_id]
    assert [e["action"] for e in audit.entries(db, target="device:cam-1")] == [
        "device.command_result",
        "device.command",
    ]


def test_a_command_the_device_was_interrupted_in_shows_failed_with_why(db):
    command = commands.build("cam-1", "snapshot", {})
    with audit.transaction(db):
        commands.record(db, command, "pavlodar", actor="anna")
    text = "interrupted: the camera stopped before it finished snapshot; not carried out again"
    shown = commands.record_result(db, command.answer("cam-1", False, text, {messages.INTERRUPTED: True}))
    assert (shown["state"], shown["result_message"]) == ("failed", text)
    assert shown["result_data"] == {messages.INTERRUPTED: True}


def test_a_device_back_online_is_owed_only_its_young_unanswered_commands(db):
    now = timeutil.utc_now()

    def sent(name: str, age_s: float, device: str = "cam-1") -> messages.Command:
        command = commands.build(device, name, {"why": name})
        with audit.transaction(db):
            commands.record(db, command, "pavlodar", actor="anna")
        with portable.transaction(db):
            at = timeutil.to_wire(now - timedelta(seconds=age_s))
            portable.execute(
                db, "update commands set created_at = ? where command_id = ?", [at, command.command_id]
            )
        return command

    answered = sent("snapshot", 10)
    commands.record_result(db, answered.answer("cam-1", True, "готово"))
    sent("snapshot", messages.COMMAND_MAX_AGE_S + 100)  # the device would answer it "expired"
    older, newer = sent("detection_off", 120), sent("detection_on", 30)
    sent("snapshot", 5, device="cam-2")

    owed = commands.unanswered(db, "cam-1", online_at=now)
    assert [(c.command_id, c.name, c.args) for c in owed] == [
        (older.command_id, "detection_off", {"why": "detection_off"}),
        (newer.command_id, "detection_on", {"why": "detection_on"}),
    ]
    # Sent as it was first sent: the device judges its age by ts, and drops a copy it has carried out by its id.
    assert round((now - owed[0].ts).total_seconds()) == 120
    # A retained "online" from before anything owed could have been sent: nothing is asked of the store.
    assert commands.unanswered(db, "cam-1", online_at=now - timedelta(seconds=400)) == []


def _segments(n: int) -> list[messages.EvidenceSegment]:
    chain, made = None, []
    for index in range(n):
        started, ended = START + timedelta(minutes=index), START + timedelta(minutes=index + 1)
        sha256 = hashlib.sha256(f"segment {index}".encode()).hexdigest()
        link = chain_hash(chain, sha256, index, timeutil.to_wire(started), timeutil.to_wire(ended))
        made.append(
            messages.EvidenceSegment(
                device="badge-1",
                segment_id=new_id(),
                index=index,
                started_at=started,
                ended_at=ended,
                size=1000,
                sha256=sha256,
                prev_chain_sha256=chain,
                chain_sha256=link,
                content_type="video/mp4",
            )
        )
        chain = link
    return made


def test_evidence_segments_chain_and_a_gap_is_named(db):
    first, second, third = _segments(3)
    ledger = evidence.EvidenceLedger()
    with portable.transaction(db):
        assert ledger.record(db, first) is None
        assert ledger.record(db, first) is None  # a re-delivery
        assert ledger.record(db, third) is not None  # the second never came: the link is broken
    rows = portable.rows(db, "SELECT segment_id, chain_ok FROM evidence_segments ORDER BY idx")
    assert [(r["segment_id"], r["chain_ok"]) for r in rows] == [(first.segment_id, 1), (third.segment_id, 0)]
    head = portable.row(db, "SELECT idx, segment_id FROM evidence_heads WHERE device = 'badge-1'")
    assert (head["idx"], head["segment_id"]) == (2, third.segment_id)
    # A fresh ledger (central restarted) reads the latest segment back from the store.
    with portable.transaction(db):
        assert evidence.EvidenceLedger().record(db, second) is not None  # older than the latest stored
