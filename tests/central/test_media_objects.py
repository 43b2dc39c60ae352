"""Media in an object store: the media folder (embedded default) and S3 (a real SeaweedFS server) behind one
interface, addressed by SHA-256; clips uploaded part by part; the page's media proxy checking the role,
auditing the view and streaming byte ranges from the bucket; retention deleting the objects."""

from __future__ import annotations

import hashlib
import os

import pytest
from support.web import insert_event, login, make_central

from kuzet.central.auth import audit
from kuzet.central.store.media import MediaStore, MediaUnavailable
from kuzet.central.store.objects import MIB, LocalObjects, ObjectMismatch, S3Objects, key, s3_client


@pytest.fixture(params=["local", "s3"])
def objects(request, tmp_path):
    if request.param == "local":
        return LocalObjects(tmp_path / "media")
    server = request.getfixturevalue("seaweedfs")
    store = S3Objects(
        server.client(), f"objects-{os.getpid()}-{len(os.listdir(tmp_path))}", part_bytes=5 * MIB
    )
    store.ensure_bucket()
    return store


def _file(tmp_path, data: bytes):
    path = tmp_path / f"clip-{hashlib.sha256(data).hexdigest()[:8]}.mp4"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_objects_are_stored_once_by_sha256_and_read_in_ranges(objects, tmp_path):
    data = os.urandom(12 * MIB + 123)  # three parts of 5 MiB on S3
    src, sha = _file(tmp_path, data)
    objects.put_file(sha, src, "video/mp4")
    assert not src.exists()
    again, _ = _file(tmp_path, data)
    objects.put_file(sha, again, "video/mp4")  # a clip sent twice: stored once, the copy removed
    assert not again.exists() and objects.size(sha) == len(data)

    whole = objects.read(sha)
    assert (whole.size, whole.start, whole.length) == (len(data), 0, len(data))
    assert hashlib.sha256(b"".join(whole.chunks)).hexdigest() == sha
    part = objects.read(sha, 5 * MIB - 2, 5 * MIB + 1)
    assert (part.start, part.length) == (5 * MIB - 2, 4)
    assert b"".join(part.chunks) == data[5 * MIB - 2 : 5 * MIB + 2]
    tail = objects.read(sha, len(data) - 10)
    assert b"".join(tail.chunks) == data[-10:]

    snapshot = b"\xff\xd8 a snapshot"
    objects.put_bytes(hashlib.sha256(snapshot).hexdigest(), snapshot, "image/jpeg")
    assert objects.exists(hashlib.sha256(snapshot).hexdigest())
    assert objects.get(hashlib.sha256(snapshot).hexdigest()) == snapshot  # a small object, whole
    objects.delete(sha)
    assert objects.read(sha) is None and not objects.exists(sha) and objects.get(sha) is None


def test_s3_clips_go_up_one_part_at_a_time_and_a_wrong_hash_stores_nothing(seaweedfs, tmp_path):
    client = seaweedfs.client()
    store = S3Objects(client, "kuzet-objects", part_bytes=5 * MIB)
    store.ensure_bucket()
    sent = []
    upload_part = client.upload_part

    def counting(**kwargs):
        sent.append(len(kwargs["Body"]))
        return upload_part(**kwargs)

    client.upload_part = counting
    data = os.urandom(11 * MIB)
    src, sha = _file(tmp_path, data)
    store.put_file(sha, src, "video/mp4")
    assert sent == [5 * MIB, 5 * MIB, 1 * MIB]  # never more than one part of the clip in memory

    sent.clear()
    wrong, _ = _file(tmp_path, os.urandom(6 * MIB))
    with pytest.raises(ObjectMismatch):
        store.put_file("f" * 64, wrong, "video/mp4")
    assert wrong.exists() and not store.exists("f" * 64)  # the file stays for another try; nothing is named
    assert (
        client.list_multipart_uploads(Bucket="kuzet-objects").get("Uploads", []) == []
    )  # the upload was aborted
    with pytest.raises(ObjectMismatch):
        store.put_bytes("e" * 64, b"not those bytes", "image/jpeg")


def test_a_clip_of_one_part_costs_one_head_and_one_put_and_a_wrong_one_stores_nothing(seaweedfs, tmp_path):
    """A clip under a part's size goes up in one PUT after one HEAD (not put_bytes' second HEAD): at a region's
    rate each round trip is time the media thread spends waiting."""
    client = seaweedfs.client()
    store = S3Objects(client, "kuzet-small-clips", part_bytes=5 * MIB)
    store.ensure_bucket()
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **kwargs: calls.append(model.name))
    src, sha = _file(tmp_path, os.urandom(384 * 1024))
    store.put_file(sha, src, "video/mp4")
    assert calls == ["HeadObject", "PutObject"] and not src.exists() and store.size(sha) == 384 * 1024
    calls.clear()
    wrong, _ = _file(tmp_path, os.urandom(1000))
    with pytest.raises(ObjectMismatch):
        store.put_file("d" * 64, wrong, "video/mp4")
    assert calls == ["HeadObject"] and wrong.exists()  # checked before anything is sent; the file stays


def test_workers_starting_on_a_new_bucket_at_once_all_get_it(seaweedfs):
    """Each ingest worker creates the bucket before its first write; two that both found it missing both go
    on (the second is told it already owns it), where the loser used to pause its media for a retry."""
    from botocore.exceptions import ClientError

    first, second = S3Objects(seaweedfs.client(), "kuzet-raced"), S3Objects(seaweedfs.client(), "kuzet-raced")
    missing = ClientError({"Error": {"Code": "404"}}, "HeadBucket")
    second.client.head_bucket = lambda **kwargs: (_ for _ in ()).throw(missing)  # looked before first made it
    first.ensure_bucket()
    second.ensure_bucket()
    snapshot = b"\xff\xd8 raced"
    second.put_bytes(hashlib.sha256(snapshot).hexdigest(), snapshot, "image/jpeg")
    assert first.get(hashlib.sha256(snapshot).hexdigest()) == snapshot
    refused = S3Objects(seaweedfs.client(), "kuzet-refused")
    denied = ClientError({"Error": {"Code": "AccessDenied"}}, "CreateBucket")
    refused.client.create_bucket = lambda **kwargs: (_ for _ in ()).throw(denied)
    with pytest.raises(ClientError, match="AccessDenied"):  # any other refusal still says so
        refused.ensure_bucket()
    assert not refused._bucket_ready


def test_an_unreachable_object_store_is_media_unavailable_and_loses_nothing(tmp_path):
    from kuzet.central.broker import free_port

    client = s3_client(f"http://127.0.0.1:{free_port()}", "us-east-1", "k", "s")
    central = make_central(tmp_path)
    media = MediaStore(central.db, central.media_dir, S3Objects(client, "gone"))
    with pytest.raises(MediaUnavailable):
        media.put(b"\xff\xd8 snapshot", kind="snapshot", content_type="image/jpeg", device="cam-1")
    src, sha = _file(tmp_path, os.urandom(1000))
    with pytest.raises(MediaUnavailable):
        media.adopt(src, sha, kind="clip", content_type="video/mp4", device="cam-1")
    assert src.exists()  # the clip is still there to be stored again
    assert central.db()["media"].count == 0  # no row names bytes that are not stored


@pytest.fixture
def s3_central(tmp_path, s3_media):
    central = make_central(tmp_path, media=s3_media)
    yield central
    central.close()


def test_central_keeps_media_in_the_bucket_and_the_page_streams_it(s3_central, seaweedfs, s3_media):
    from kuzet.central.web import create_app

    central = s3_central
    media = MediaStore.for_central(central)
    event = insert_event(central)
    clip_bytes = os.urandom(7 * MIB)
    src, sha = _file(central.data_dir, clip_bytes)
    media.adopt(src, sha, kind="clip", content_type="video/mp4", device="cam-01", event_id=event["event_id"])
    snapshot = b"\xff\xd8 a snapshot of the event"
    snap_sha = media.put(
        snapshot, kind="snapshot", content_type="image/jpeg", device="cam-01", event_id=event["event_id"]
    )
    assert not (central.media_dir / sha[:2] / sha).exists()  # nothing in the media folder
    bucket = seaweedfs.client()
    assert bucket.head_object(Bucket=s3_media["s3_bucket"], Key=key(sha))["ContentLength"] == len(clip_bytes)
    calls: list[str] = []
    media.objects.client.meta.events.register(
        "before-call.s3.*", lambda model, **kw: calls.append(model.name)
    )
    assert media.latest_snapshot(event["event_id"], max_bytes=1000) == snapshot  # what a dispatch carries
    assert calls == ["GetObject"]  # one round trip to the bucket as routing sends a patrol
    assert media.latest_snapshot(event["event_id"], max_bytes=10) is None  # too big to carry: not fetched
    assert calls == ["GetObject"]

    client = create_app(central).test_client()
    login(client, "operator")
    response = client.get(f"/media/{sha}")
    assert response.status_code == 200 and response.mimetype == "video/mp4"
    assert not response.is_sequence  # streamed, not built in memory
    assert response.get_data() == clip_bytes
    assert "no-store" in response.headers["Cache-Control"]
    response = client.get(f"/media/{sha}", headers={"Range": "bytes=5242870-5242889"})
    assert response.status_code == 206 and response.get_data() == clip_bytes[5242870:5242890]
    assert response.headers["Content-Range"] == f"bytes 5242870-5242889/{len(clip_bytes)}"
    assert client.get(f"/media/{sha}", headers={"Range": "bytes=-4"}).get_data() == clip_bytes[-4:]
    assert client.get(f"/media/{sha}", headers={"Range": f"bytes={len(clip_bytes)}-"}).status_code == 416
    assert client.get(f"/media/{snap_sha}").get_data() == snapshot
    views = audit.entries(central.db(), action="media.view")
    # One view of each (the ranges after the first byte are the same view), by the operator.
    assert sorted(v["detail"]["sha256"] for v in views) == sorted([sha, snap_sha])
    assert {v["actor"] for v in views} == {"operator"}

    technician = create_app(central).test_client()
    login(technician, "technician")
    assert technician.get(f"/media/{sha}").status_code == 403
    assert client.get(f"/media/{'0' * 64}").status_code == 404


def test_retention_deletes_expired_objects_from_the_bucket(s3_central, seaweedfs, s3_media):
    from datetime import timedelta

    from kuzet.central.store.retention import apply_retention
    from kuzet.shared import timeutil

    central = s3_central
    media = MediaStore.for_central(central)
    old = timeutil.to_wire(timeutil.utc_now() - timedelta(days=60))
    expired = insert_event(central, received_at=old, updated_at=old, started_at=old)
    held = insert_event(central, received_at=old, updated_at=old, started_at=old, hold=1)
    gone = media.put(
        b"old snapshot",
        kind="snapshot",
        content_type="image/jpeg",
        device="cam-01",
        event_id=expired["event_id"],
    )
    kept = media.put(
        b"held snapshot",
        kind="snapshot",
        content_type="image/jpeg",
        device="cam-01",
        event_id=held["event_id"],
    )
    central.db().execute("UPDATE media SET created_at = ?", [old])
    central.db().conn.commit()

    report = apply_retention(central.db(), media.objects, retention_days=30, max_media_gb=50)

    assert report.events == 1 and report.media == 1
    assert not media.objects.exists(gone) and media.objects.exists(kept)


def test_badge_evidence_chains_verify_against_recordings_in_the_bucket(s3_central):
    """A badge's body-camera recordings kept in the bucket verify as its chain; one edited there is found."""
    from support.chain import next_segment

    from kuzet.central.routing import evidence
    from kuzet.central.routing.evidence import EvidenceLedger

    central, device = s3_central, "badge-s3"
    media, db, ledger, segment = MediaStore.for_central(s3_central), central.db(), EvidenceLedger(), None
    recordings = []
    for index in range(3):
        data = f"recording {index} of {device}".encode() * 200
        segment = next_segment(device, segment, data, seconds=60)
        with db.conn:
            assert ledger.record(db, segment) is None
            db["clips"].insert(
                {
                    "clip_id": segment.segment_id,
                    "device": device,
                    "sha256": segment.sha256,
                    "state": "verified",
                }
            )
        media.put(data, kind="evidence", content_type="video/mp4", device=device)
        recordings.append(segment)
    report = evidence.chain_report(db, media.objects, device)
    assert report["status"] == "verified" and report["last_index"] == 2

    # The middle recording is replaced in the bucket behind central's back.
    sha = recordings[1].sha256
    media.objects.client.put_object(Bucket=media.objects.bucket, Key=key(sha), Body=b"edited")
    problems = evidence.verify_device(db, media.objects, device)
    assert [(p.index, "edited" in p.what) for p in problems] == [(1, True)]


def test_verify_media_sweeps_the_bucket(s3_central):
    """``kuzet central verify-media`` checks the objects in the bucket, not an empty media folder."""
    import argparse

    from kuzet.central.store import integrity

    central = s3_central
    media = MediaStore.for_central(central)
    event = insert_event(central)
    intact = media.put(
        os.urandom(3000),
        kind="snapshot",
        content_type="image/jpeg",
        device="cam-01",
        event_id=event["event_id"],
    )
    edited = media.put(
        os.urandom(3000),
        kind="snapshot",
        content_type="image/jpeg",
        device="cam-01",
        event_id=event["event_id"],
    )
    media.objects.client.put_object(Bucket=media.objects.bucket, Key=key(edited), Body=b"edited")

    assert integrity.verify_media_command(central, argparse.Namespace(json=True)) == 1
    report = integrity.sweep(central.db(), media.objects)
    assert report["checked"] == 2 and [p["sha256"] for p in report["problems"]] == [edited]
    assert intact not in {p["sha256"] for p in report["problems"]}


def test_the_page_answers_503_while_the_bucket_is_unreachable_and_audits_no_view(tmp_path, s3_media):
    from kuzet.central.broker import free_port
    from kuzet.central.web import create_app

    central = make_central(tmp_path, media=s3_media)
    event = insert_event(central)
    sha = MediaStore.for_central(central).put(
        b"\xff\xd8 a snapshot",
        kind="snapshot",
        content_type="image/jpeg",
        device="cam-01",
        event_id=event["event_id"],
    )
    gone = make_central(
        tmp_path / "later", media=s3_media | {"s3_endpoint": f"http://127.0.0.1:{free_port()}"}
    )
    gone.db()["media"].insert(dict(central.db()["media"].get(sha)))  # the same row, its bucket unreachable
    client = create_app(gone).test_client()
    login(client, "operator")
    response = client.get(f"/media/{sha}")
    assert response.status_code == 503 and b"cannot be reached" in response.data
    assert audit.entries(gone.db(), action="media.view") == []
    central.close()
    gone.close()
