"""Issue 17: nothing a device was told is stored is ever lost. Each fault is done for real: ``kuzet central
run`` killed with SIGKILL, its data folder or media folder on a small file system that fills up, the database
locked by another connection."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time

import pytest
from support.ingest import dead_letter_rows, event, make_central, new_id, up, wait_for
from support.ingest_faults import CentralProcess, SteadyCamera, clip, fill, small_filesystem

from kuzet.central.ingest.service import IngestService
from kuzet.shared import messages
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

pytestmark = pytest.mark.slow


def test_sigkill_of_central_loses_no_acknowledged_event(tmp_path, mosquitto):
    # A wide batch window keeps many received messages uncommitted at any moment: the moment of the kill.
    central = CentralProcess(tmp_path, mosquitto.url, ingest={"batch_window_ms": 300}).start()
    camera = SteadyCamera(mosquitto.url, rate=200).start()
    try:
        time.sleep(2.5)
        central.kill()
        time.sleep(1)
        central.start()
        time.sleep(1)
        camera.stop()
        acknowledged = set(camera.acknowledged)
        assert len(acknowledged) > 500
        try:
            wait_for(
                lambda: acknowledged <= central.event_ids(), timeout_s=30, what="every acknowledged event"
            )
        except AssertionError:
            missing = acknowledged - central.event_ids()
            raise AssertionError(f"{len(missing)} of {len(acknowledged)} acknowledged events lost") from None
    finally:
        central.stop()


def test_database_disk_full_holds_messages_and_recovers(tmp_path, mosquitto):
    with small_filesystem(tmp_path / "data", size="8m") as data:
        central = CentralProcess(tmp_path, mosquitto.url, storage={"min_free_mb": 1}).start()
        camera = SteadyCamera(mosquitto.url, rate=100).start()
        ballast = None
        try:
            time.sleep(1)
            ballast = fill(data)
            during = _health_until(central, lambda status, _: status == 503, timeout_s=30)
            time.sleep(2)  # events keep coming while the disk is full
            ballast.unlink()
            after = _health_until(central, lambda status, _: status == 200, timeout_s=60)
            camera.stop()
            acknowledged = set(camera.acknowledged)
            _all_stored(central, acknowledged)
            assert during[0] == 503 and "full" in " ".join(during[1]["problems"]), during
            assert after[0] == 200, after
            assert not central.query("SELECT count(*) FROM dead_letters")[0][0]
            critical = central.query("SELECT message FROM alerts WHERE level = 'critical'")
            assert critical and "full" in critical[0][0], critical
        finally:
            central.stop()
            if ballast is not None:
                ballast.unlink(missing_ok=True)


def _health_until(central, condition, timeout_s: float) -> tuple[int | None, dict]:
    """Poll /healthz until ``condition(status, body)``; returns that answer (the last one on a time-out)."""
    deadline = time.monotonic() + timeout_s
    answer = central.healthz()
    while not condition(*answer) and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = central.healthz()
    return answer


def _all_stored(central, acknowledged: set[str], timeout_s: float = 60) -> None:
    try:
        wait_for(lambda: acknowledged <= central.event_ids(), timeout_s=timeout_s, what="acknowledged events")
    except AssertionError:
        missing = acknowledged - central.event_ids()
        raise AssertionError(f"{len(missing)} of {len(acknowledged)} acknowledged events lost") from None


def test_clip_chunks_arriving_while_the_database_is_locked_are_stored_not_dead_lettered(tmp_path, mosquitto):
    central = make_central(tmp_path, mosquitto.url)
    ingest = IngestService(central).start()
    device = Link(MqttSection(url=mosquitto.url), "cam-1-test").start()
    locker = sqlite3.connect(central.db_path, isolation_level=None)
    try:
        device.publish(up("cam-1", "status"), b"not even JSON").wait_for_publish(5)  # a true dead letter
        wait_for(lambda: dead_letter_rows(central), what="the invalid message dead-lettered")
        clips = [clip(os.urandom(3000 + n)) for n in range(4)]
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock far beyond the 5 s busy timeout
        for chunks in clips:
            for chunk in chunks:
                device.publish(up("cam-1", "clip"), messages.encode(chunk)).wait_for_publish(5)
        time.sleep(
            18
        )  # longer than the writer's tries with the busy timeout, one by one, and a dead letter's
        locker.execute("ROLLBACK")
        clip_ids = {chunks[0].clip_id for chunks in clips}
        verified = f"SELECT clip_id FROM clips WHERE state = 'verified' AND clip_id IN ({','.join('?' * 4)})"
        wait_for(
            lambda: len(central.db().execute(verified, list(clip_ids)).fetchall()) == 4,
            timeout_s=30,
            what="every clip verified",
        )
        assert [row["reason"] for row in dead_letter_rows(central)] == [
            dead_letter_rows(central)[0]["reason"]
        ]
        assert ingest.health()["problems"] == []
    finally:
        locker.close()
        device.stop()
        ingest.stop()


def test_media_disk_full_keeps_snapshots_and_clips_and_writes_them_when_space_returns(tmp_path, mosquitto):
    settings = {"clip_check_interval_s": 1, "clip_stalled_after_s": 1}
    central = CentralProcess(tmp_path, mosquitto.url, ingest=settings, storage={"min_free_mb": 1})
    with small_filesystem(central.data_dir / "media", size="4m") as media:
        ballast = fill(media)
        central.start(healthy=False)
        device = Link(MqttSection(url=mosquitto.url), "cam-1-test").start()
        try:
            event_ids = [new_id() for _ in range(25)]
            for event_id in event_ids:
                device.publish(
                    up("cam-1", "event"), messages.encode(event("cam-1", event_id, 0))
                ).wait_for_publish(5)
                device.publish(up("cam-1", "snapshot"), messages.encode(snapshot(event_id))).wait_for_publish(
                    5
                )
            clips = [clip(os.urandom(4000 + n)) for n in range(2)]
            for chunk in (chunk for chunks in clips for chunk in chunks):
                device.publish(up("cam-1", "clip"), messages.encode(chunk)).wait_for_publish(5)
            handled = lambda: central.count("dead_letters") + central.count("media_retry") >= 25  # noqa: E731
            wait_for(handled, what="the snapshots handled")
            assert central.count("dead_letters") == 0
            assert central.count("media_retry") == 25 and central.count("events") == 25
            full = _health_until(central, lambda status, _: status == 503, timeout_s=10)
            problems = " ".join(full[1]["problems"])
            assert "media disk" in problems and "media folder cannot be written" in problems, full

            ballast.unlink()
            shown = "SELECT count(*) FROM events WHERE snapshot_sha256 IS NOT NULL"
            wait_for(lambda: central.query(shown)[0][0] == 25, timeout_s=30, what="every snapshot written")
            verified = "SELECT count(*) FROM clips WHERE state = 'verified'"
            wait_for(lambda: central.query(verified)[0][0] == 2, timeout_s=30, what="both clips verified")
            for (sha256,) in central.query("SELECT snapshot_sha256 FROM events"):
                assert (media / sha256[:2] / sha256).is_file()
            assert central.query("SELECT count(*) FROM media_retry")[0][0] == 0
            assert _health_until(central, lambda status, _: status == 200, timeout_s=30)[0] == 200
        finally:
            device.stop()
            central.stop()


def snapshot(event_id: str) -> messages.Snapshot:
    data = b"\xff\xd8\xff\xe0" + os.urandom(3000)
    return messages.Snapshot(
        device="cam-1",
        event_id=event_id,
        sha256=hashlib.sha256(data).hexdigest(),
        width=640,
        height=480,
        data=messages.to_base64(data),
    )
