"""Ingest with its media in S3, end to end: a camera's event, snapshot and clip chunks through a real
Mosquitto into central, the clip reassembled and uploaded to a real SeaweedFS in parts, and the page playing
it back through the media proxy; the bucket unreachable for a while loses nothing."""

from __future__ import annotations

import hashlib
import os

import pytest
from support.ingest import event, new_id, up, wait_for
from support.web import login, make_central

from kuzet.central.ingest.service import IngestService
from kuzet.central.store.objects import MIB, key
from kuzet.shared import messages
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link


@pytest.fixture
def device(mosquitto):
    link = Link(MqttSection(url=mosquitto.url), "cam-s3-publisher").start()
    yield link
    link.stop()


def send(link: Link, message) -> None:
    link.publish(up(message.device, message.type), messages.encode(message))


def clip_chunks(clip: bytes, clip_id: str, event_id: str) -> list[messages.ClipChunk]:
    sha, size = hashlib.sha256(clip).hexdigest(), messages.CLIP_CHUNK_BYTES
    parts = [clip[i : i + size] for i in range(0, len(clip), size)]
    return [
        messages.ClipChunk(
            device="cam-1",
            clip_id=clip_id,
            event_id=event_id,
            index=index,
            count=len(parts),
            size=len(clip),
            sha256=sha,
            chunk_sha256=hashlib.sha256(part).hexdigest(),
            content_type="video/mp4",
            data=messages.to_base64(part),
        )
        for index, part in enumerate(parts)
    ]


def send_event_with_media(device, clip: bytes, jpeg: bytes) -> messages.Event:
    """An event, its snapshot and its clip's chunks (last first), as a camera sends them."""
    clip_id = new_id()
    opened = event("cam-1", new_id(), 0, clip_id=clip_id)
    send(device, opened)
    snapshot = messages.Snapshot(
        device="cam-1",
        event_id=opened.event_id,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        width=4,
        height=3,
        data=messages.to_base64(jpeg),
    )
    send(device, snapshot)
    for chunk in reversed(clip_chunks(clip, clip_id, opened.event_id)):
        send(device, chunk)
    return opened


def test_a_cameras_clip_and_snapshot_land_in_the_bucket_and_play_on_the_page(
    tmp_path, mosquitto, seaweedfs, s3_media, device
):
    from kuzet.central.web import create_app

    central = make_central(tmp_path, mqtt={"url": mosquitto.url}, media=s3_media)
    ingest = IngestService(central).start()
    try:
        clip = os.urandom(6 * MIB + 5000)  # two parts of the 5 MiB upload
        jpeg = b"\xff\xd8 the event's best frame"
        send_event_with_media(device, clip, jpeg)
        sha = hashlib.sha256(clip).hexdigest()
        wait_for(
            lambda: central.db().execute("SELECT 1 FROM clips WHERE state = 'verified'").fetchall(),
            timeout_s=60,
            what="the verified clip",
        )
        wait_for(
            lambda: central.db().execute("SELECT snapshot_sha256 FROM events").fetchone()[0],
            what="the event's snapshot",
        )
        media = ingest.health()["storage"]["media"]  # /healthz says where the media goes
        assert media == {"kind": "s3", "endpoint": seaweedfs.endpoint, "bucket": "kuzet-media"}
    finally:
        ingest.stop()

    bucket = seaweedfs.client()
    assert bucket.head_object(Bucket="kuzet-media", Key=key(sha))["ContentLength"] == len(clip)
    assert not (central.media_dir / sha[:2] / sha).exists()
    assert ingest.counters.dead_letters == 0
    client = create_app(central).test_client()
    login(client, "supervisor")
    assert client.get(f"/media/{sha}").get_data() == clip
    assert client.get(f"/media/{hashlib.sha256(jpeg).hexdigest()}").get_data() == jpeg
    central.close()


def test_media_sent_while_the_object_store_is_down_is_stored_when_it_is_back(
    tmp_path, mosquitto, s3_media, device
):
    from support.seaweedfs import SeaweedS3, find_weed

    later = SeaweedS3(find_weed())  # its address is known now; it starts after the camera has sent
    media = s3_media | {"s3_endpoint": later.endpoint}
    central = make_central(
        tmp_path,
        mqtt={"url": mosquitto.url},
        media=media,
        ingest={"clip_check_interval_s": 0.5, "clip_stalled_after_s": 1},
    )
    ingest = IngestService(central).start()  # starts although the bucket cannot be reached
    try:
        clip, jpeg = os.urandom(600_000), b"\xff\xd8 sent while the bucket was down"
        opened = send_event_with_media(device, clip, jpeg)
        db = central.db()
        wait_for(
            lambda: db.execute("SELECT count(*) FROM media_retry").fetchone()[0], what="the kept snapshot"
        )
        wait_for(
            lambda: db.execute("SELECT 1 FROM clips WHERE received = count").fetchall(), what="every chunk"
        )
        [[state]] = db.execute("SELECT state FROM clips").fetchall()
        # Kept, not lost, not pretended: in the spool, and joined again each round (while a round tries, the
        # ingest worker holds the clip's claim: "joining").
        assert state in ("receiving", "joining") and db["media"].count == 0
        [[event_row]] = db.execute("SELECT count(*) FROM events WHERE event_id = ?", [opened.event_id])
        assert event_row == 1  # the event itself did not wait for its pictures

        later.start()
        wait_for(
            lambda: db.execute("SELECT 1 FROM clips WHERE state = 'verified'").fetchall(), 60, "the clip"
        )
        wait_for(lambda: db.execute("SELECT snapshot_sha256 FROM events").fetchone()[0], 60, "the snapshot")
        bucket = later.client()
        for data in (clip, jpeg):
            sha = hashlib.sha256(data).hexdigest()
            assert bucket.get_object(Bucket="kuzet-media", Key=key(sha))["Body"].read() == data
        assert db.execute("SELECT count(*) FROM media_retry").fetchone()[0] == 0
    finally:
        ingest.stop()
        later.stop()
        central.close()
