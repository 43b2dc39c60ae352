"""Device registration and revocation, alerts, media rows and kept snapshots on both stores (SQLite,
PostgreSQL), as central's pages and ingest call them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from support.ingest import SITE, event, new_id

from kuzet.central import alerts
from kuzet.central.auth import audit
from kuzet.central.ingest import authority, media_retry
from kuzet.central.store import devices, portable, registry
from kuzet.central.store.events import Received
from kuzet.central.store.media import MediaStore, MediaUnavailable
from kuzet.shared import messages, timeutil


def _camera(device="cam-1", name="Вход") -> registry.Registration:
    return registry.Registration(device_id=device, kind="camera", name=name, site=SITE, lat=52.28, lon=76.95)


def test_a_device_is_registered_revoked_and_reinstated_only_on_purpose(store):
    with store.connection() as db:
        assert registry.register(db, _camera(), actor="admin") is True
        assert registry.register(db, _camera(name="Вход, север"), actor="admin") is False
        known = devices.of_batch(db, ["cam-1", "cam-9"])
        assert list(known) == ["cam-1"] and known["cam-1"].kind == "camera" and known["cam-1"].registered_at
        assert registry.revoke(db, "cam-1", actor="admin", reason="stolen")
        with pytest.raises(registry.DeviceRevoked):
            registry.register(db, _camera(), actor="admin")
        assert registry.reinstate(db, "cam-1", actor="admin", reason="found")
        row = portable.row(
            db, "SELECT name, revoked_at, registered_at FROM devices WHERE device_id = ?", ["cam-1"]
        )
        actions = [e["action"] for e in audit.entries(db, target="device:cam-1")]
    assert (row["name"], row["revoked_at"]) == ("Вход, север", None) and row["registered_at"]
    assert actions[::-1][:2] == ["device.register", "device.reregister"] and len(actions) == 4


def test_media_attach_only_to_the_senders_own_events(store):
    event_id = new_id()
    with store.transaction() as conn:
        store.events.apply(conn, [Received(event("cam-1", event_id, 1), SITE, timeutil.now_wire())])
    own = messages.ClipLost(device="cam-1", event_id=event_id, clip_id=new_id(), reason="gone")
    foreign = messages.ClipLost(device="cam-2", event_id=event_id, clip_id=new_id(), reason="gone")
    with store.connection() as db:
        owners = authority.event_owners(db, [own, foreign])
        assert authority.foreign_event(owners, own) is None
        assert "cam-1's" in authority.foreign_event(owners, foreign)


def test_repeated_device_alerts_count_into_one_open_alert_until_acknowledged(store):
    with store.connection() as db:
        first = alerts.raise_for_device(db, "warning", "перегрев", "cam-1", "hot")
        again = alerts.raise_for_device(db, "warning", "перегрев 85 °C", "cam-1", "hot")
        assert again["id"] == first["id"] and again["count"] == 2 and again["message"] == "перегрев 85 °C"
        assert alerts.open_count(db) == 1
        done = alerts.acknowledge(db, first["id"], actor="anna")
        assert done["acknowledged_by"] == "anna" and alerts.open_count(db) == 0
        with pytest.raises(alerts.AlertError):
            alerts.acknowledge(db, 999_999, actor="anna")


def test_a_media_row_is_written_once_and_the_snapshot_read_back(store, tmp_path):
    event_id = new_id()
    with store.transaction() as conn:
        store.events.apply(conn, [Received(event("cam-1", event_id, 1), SITE, timeutil.now_wire())])
    with store.connection() as db:
        media = MediaStore(db, tmp_path / "media")
        data = b"\xff\xd8 a jpeg"
        for _ in range(2):  # a repeat of the same bytes changes nothing
            sha256 = media.put(
                data, kind="snapshot", content_type="image/jpeg", device="cam-1", event_id=event_id
            )
        assert portable.row(db, "SELECT count(*) AS n FROM media")["n"] == 1
        assert b"".join(media.read(sha256).chunks) == data and media.read("0" * 64) is None
        assert media.latest_snapshot(event_id, max_bytes=1000) == data
        assert media.latest_snapshot(event_id, max_bytes=3) is None


def test_a_kept_snapshot_waits_while_refused_and_goes_once_stored(store):
    jpeg = b"\xff\xd8 a jpeg"
    snapshot = messages.Snapshot(
        device="cam-1",
        event_id=new_id(),
        sha256=hashlib.sha256(jpeg).hexdigest(),
        data=base64.b64encode(jpeg).decode(),
        width=1,
        height=1,
    )
    topic = f"kuzet/v1/{SITE}/cam-1/up/snapshot"
    with store.connection() as db:
        with portable.transaction(db):
            media_retry.keep(db, topic, messages.encode(snapshot), timeutil.now_wire(), "disk full")

        def refuse(message):
            raise MediaUnavailable("disk full")

        assert media_retry.retry(db, refuse) == (set(), "disk full")
        assert portable.row(db, "SELECT attempts FROM media_retry")["attempts"] == 1
        assert media_retry.retry(db, lambda message: message.event_id) == ({snapshot.event_id}, None)
        assert media_retry.waiting(db) == 0


def test_the_media_sweep_names_a_missing_or_altered_file_and_raises_an_alert(store, tmp_path):
    from kuzet.central.store import integrity

    with store.connection() as db:
        media = MediaStore(db, tmp_path / "media")
        kept = media.put(b"kept", kind="snapshot", content_type="image/jpeg", device="cam-1")
        gone = media.put(b"gone", kind="snapshot", content_type="image/jpeg", device="cam-2")
        altered = media.put(b"altered", kind="snapshot", content_type="image/jpeg", device="cam-3")
        media.objects.file(gone).unlink()
        media.objects.file(altered).write_bytes(b"edited")
        report = integrity.sweep(db, media.objects)
        assert report["checked"] == 3
        assert {p["sha256"]: p["problem"].split(":")[0] for p in report["problems"]} == {
            gone: "the file is missing",
            altered: "the file was altered on disk",
        }
        assert kept not in {p["sha256"] for p in report["problems"]}
        assert alerts.open_count(db) == 2


def test_ingest_workers_lock_their_batches_devices_in_one_order(store, monkeypatch):
    """Ingest workers sharing the stream each mark their batch's devices heard, first thing in the batch's
    transaction; in arrival order two of them deadlocked on PostgreSQL (seen at 10,000 devices, bench/scale.py).
    In device order they only wait for each other."""
    written = []
    real = devices._upsert
    monkeypatch.setattr(devices, "_upsert", lambda conn, rows: written.append(rows) or real(conn, rows))
    heard = {
        name: devices.Heard(SITE, "2026-12-06T04:00:00.000Z")
        for name in ("cam-3", "badge-1", "cam-10", "cam-2")
    }
    with store.connection() as db, portable.transaction(db):
        devices.record(db, heard, existing=())
        assert sorted(devices.of_batch(db, heard)) == sorted(heard)  # all new
    assert [row[0] for row in written[0]] == ["badge-1", "cam-10", "cam-2", "cam-3"]
