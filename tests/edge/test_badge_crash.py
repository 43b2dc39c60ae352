"""Body-camera evidence survives the badge being killed: a real ``kuzet badge`` recording real footage is
SIGKILLed, restarted, and central's chain report verifies every segment, including the one that was being
recorded at the kill and one sealed into the chain but not yet handed to the upload path. A recording that
cannot be read back is sealed as it is and reported lost, so the report says a recording was interrupted."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest
import tomli_w
from support.patrol import SITE, BadgeProcess, Centre, badge_config, point, start_badge, wait_for

from kuzet.central.routing.evidence import chain_report
from kuzet.edge.badge.agent import BadgeAgent
from kuzet.edge.badge.evidence import EvidenceStore
from kuzet.edge.evidence.readback import copy_readable
from kuzet.shared import evidence, timeutil


def write_badge_config(tmp_path: Path, url: str, footage: Path, device: str) -> Path:
    lat, lon = point(0)
    (tmp_path / "route.csv").write_text(f"{lat},{lon}\n{lat + 0.00001},{lon}\n")
    config = tmp_path / "badge.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "device": {"id": device, "site": SITE, "name": device.upper()},
                "mqtt": {"url": url, "keepalive_s": 5},
                "badge": {"initial_duty": "available"},
                "gps": {"source": "route", "route_file": "route.csv", "route_speed_mps": 0.01},
                "camera": {"source": str(footage / "pets09-s2l1" / "vtest.avi")},
                "evidence": {"mode": "always", "segment_s": 2, "fps": 4, "width": 320},
                "storage": {"dir": "badge-data"},
            }
        )
    )
    return config


def report(centre: Centre, device: str) -> dict:
    return chain_report(centre.db(), centre.central.media_dir, device)


def verified_with(centre: Centre, device: str, segments: int):
    def check():
        found = report(centre, device)
        return found if found["status"] == "verified" and found["segments"] >= segments else None

    return check


def segment_row(centre: Centre, device: str, index: int) -> dict:
    query = "select * from evidence_segments where device = ? and idx = ?"
    [row] = list(centre.db().query(query, [device, index]))
    return row


def frames_in(path: Path) -> int:
    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def frames_at_central(centre: Centre, sha256: str) -> int:
    return frames_in(centre.central.media_dir / sha256[:2] / sha256)


@pytest.fixture
def killed_while_recording(tmp_path, mosquitto, footage):
    """A ``kuzet badge`` whose segments central has verified, SIGKILLed with a segment half recorded."""
    device = "badge-31"
    centre = Centre(tmp_path, mosquitto.url)
    config = write_badge_config(tmp_path, mosquitto.url, footage, device)
    evidence_dir = tmp_path / "badge-data" / "evidence"
    partial = evidence_dir / "recording-in-progress.avi"
    badge = BadgeProcess(config, tmp_path / "badge.log")
    try:
        wait_for(verified_with(centre, device, 2), timeout_s=90, what="two segments verified at central")
        # Killed once a few frames of the segment in progress are on the card.
        wait_for(lambda: partial.exists() and partial.stat().st_size > 40_000, timeout_s=30, what="recording")
        badge.kill()
        killed_at = timeutil.utc_now()
        recorded = frames_in(partial)  # every frame of it that reached the card reads back
        assert recorded >= 2
        yield centre, config, evidence_dir, killed_at, recorded
    finally:
        badge.stop()
        centre.stop()


def test_recording_in_progress_at_a_kill_is_sealed_and_verified_at_central(tmp_path, killed_while_recording):
    centre, config, evidence_dir, killed_at, recorded = killed_while_recording
    interrupted, _ = EvidenceStore(evidence_dir, "badge-31").head()  # the index it will get
    badge = BadgeProcess(config, tmp_path / "badge.log")
    try:
        found = wait_for(
            verified_with(centre, "badge-31", interrupted + 2), timeout_s=90, what="the chain verified"
        )
        assert found["problems"] == [] and found["first_index"] == 0
        row = segment_row(centre, "badge-31", interrupted)
        # What was recorded before the kill, up to the kill, every frame that reached the card.
        started, ended = timeutil.from_wire(row["started_at"]), timeutil.from_wire(row["ended_at"])
        assert started < ended <= killed_at
        assert frames_at_central(centre, row["sha256"]) == recorded
        after = segment_row(centre, "badge-31", interrupted + 1)
        assert timeutil.from_wire(after["started_at"]) > killed_at  # recorded by the restarted badge
    finally:
        badge.stop()


def test_segment_sealed_but_not_handed_over_at_a_kill_is_uploaded_after_restart(
    tmp_path, killed_while_recording
):
    centre, config, evidence_dir, killed_at, recorded = killed_while_recording
    # The kill came a moment later: the recorder had closed this segment and sealed it into the chain
    # (renamed, record written, head moved), but not yet handed it to the upload spool.
    store = EvidenceStore(evidence_dir, "badge-31")
    started = timeutil.from_wire(
        json.loads((evidence_dir / "recording-in-progress.json").read_text())["started_at"]
    )
    closed = tmp_path / "closed.avi"
    assert copy_readable(store.partial, closed)[0] == recorded
    store.discard()
    ended = timeutil.from_wire(timeutil.to_wire(killed_at))
    sealed, video = store.seal(closed, started, ended, None)
    assert video.exists()

    badge = BadgeProcess(config, tmp_path / "badge.log")
    try:
        found = wait_for(
            verified_with(centre, "badge-31", sealed.index + 2), timeout_s=90, what="the chain verified"
        )
        assert found["problems"] == [] and found["gap_at"] is None
        row = segment_row(centre, "badge-31", sealed.index)
        assert row["segment_id"] == sealed.segment_id and row["chain_ok"] == 1
        assert row["sha256"] == sealed.sha256 and frames_at_central(centre, row["sha256"]) == recorded
    finally:
        badge.stop()


def test_unreadable_recording_left_by_a_kill_is_reported_interrupted(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url)
    evidence_dir = tmp_path / "badge-32" / "evidence"
    evidence_dir.mkdir(parents=True)
    started = timeutil.utc_now() - timedelta(seconds=20)
    info = {"started_at": timeutil.to_wire(started), "dispatch_id": None}
    (evidence_dir / "recording-in-progress.json").write_text(json.dumps(info))
    garbage = b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 20  # a header cut short, nothing after
    (evidence_dir / "recording-in-progress.avi").write_bytes(garbage)
    agent = start_badge(tmp_path, mosquitto.url, "badge-32", point(0), centre)
    try:
        found = wait_for(  # the heartbeat (segments sealed) may come before the segment's record
            lambda: (r := report(centre, "badge-32"))["segments"] and r["problems"] and r,
            what="the chain report at central",
        )
        assert found["segments"] == 1 and found["status"] == "incomplete"
        [problem] = found["problems"]
        assert problem["kind"] == "missing" and "lost (interrupted" in problem["what"]
        row = segment_row(centre, "badge-32", 0)
        assert timeutil.from_wire(row["started_at"]) == timeutil.from_wire(info["started_at"])
        # The bytes themselves stay on the badge, as the record says.
        [(segment, video)] = agent.evidence.records_after(-1)
        assert video.read_bytes() == garbage and segment.sha256 == evidence.file_sha256(video)
        assert any("nothing could be read back" in notice for notice in agent.notices)
    finally:
        agent.stop()
        centre.stop()


def write_avi(path: Path, frames: int = 3) -> Path:
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for n in range(frames):
            image = np.full((48, 64, 3), n * 40, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_seal_cut_short_is_finished_and_recovery_queues_each_segment_once(tmp_path, monkeypatch):
    config = badge_config(tmp_path, "mqtt://127.0.0.1:1", "badge-33", point(0))
    agent = BadgeAgent(config)  # never started: only its storage is used
    store = agent.evidence
    now = timeutil.from_wire(timeutil.now_wire())
    first, _ = store.seal(
        write_avi(tmp_path / "a.avi"), now - timedelta(seconds=9), now - timedelta(seconds=8), None
    )

    # Killed after noting the seal, before renaming the recording into the chain.
    real_replace = Path.replace

    def killed(self, target):
        if Path(target).suffix == ".avi":
            raise KeyboardInterrupt("killed")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.seal(
            write_avi(tmp_path / "b.avi"), now - timedelta(seconds=7), now - timedelta(seconds=6), None
        )
    monkeypatch.undo()
    assert store.head()[0] == 1  # the chain did not move yet

    for _ in range(2):  # two starts in a row: nothing is sealed or queued twice
        agent.handover.recover()
    records = [segment for segment, _ in store.records_after(-1)]
    assert [s.index for s in records] == [0, 1] and evidence.verify(records) == []
    assert records[0].chain_sha256 == first.chain_sha256 and store.head() == (2, records[1].chain_sha256)
    depth = agent.outbox.depth_by_kind()
    assert depth == {"evidence": 2, "clip": 2}  # each record once, each recording (one chunk each) once
    assert {clip.clip_id for clip in agent.spool.clips()} == {s.segment_id for s in records}
    agent.outbox.close()
    agent.inbox.close()


def test_a_badge_upgraded_from_a_version_without_hand_over_marks_does_not_resend_its_chain(tmp_path):
    config = badge_config(tmp_path, "mqtt://127.0.0.1:1", "badge-34", point(0))
    older = EvidenceStore(config.storage.dir / "evidence", "badge-34")  # sealed and sent by the older version
    now = timeutil.from_wire(timeutil.now_wire())
    older.seal(write_avi(tmp_path / "a.avi"), now - timedelta(seconds=9), now - timedelta(seconds=8), None)
    agent = BadgeAgent(config)
    agent.handover.recover()
    assert agent.outbox.depth() == 0 and agent.handover.last_handed() == 0
    agent.outbox.close()
    agent.inbox.close()
