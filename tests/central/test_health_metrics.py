"""/healthz and /metrics of a running central (ingest, routing and the web page over a real Mosquitto), read
over HTTP after real traffic: what ingest received, stored and refused (by cause), its batches and queue, the
clips it verified, dispatches by state; and /healthz turning 503 when the broker goes away."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.ingest import wait_for
from support.web import Camera, token_for

from kuzet.central.store import registry
from kuzet.shared import ids, messages, timeutil, topics

SITE = "pavlodar"


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def running(live):
    return live  # central/conftest.py


def test_metrics_after_real_traffic(running, mosquitto):
    central = running.central
    registration = registry.Registration(device_id="cam-stolen", kind="camera", site=SITE)
    registry.register(central.db(), registration, actor="tech")
    registry.revoke(central.db(), "cam-stolen", actor="tech")
    camera, stolen, badge = (
        Camera(mosquitto.url),
        Camera(mosquitto.url, "cam-stolen"),
        Camera(mosquitto.url, "badge-1"),
    )
    try:
        badge.send(
            messages.Location(
                device="badge-1", position={"lat": 52.2872, "lon": 76.9653}, fix="gps", duty="available"
            )
        )
        wait_for(lambda: running.routing.units.get("badge-1"), what="the badge known to routing")
        event_id = ids.new_id()
        camera.event(event_id)  # loitering, high: routing sends badge-1
        camera.clip(event_id, b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 200, "video/x-matroska")
        camera.link.publish(topics.up(SITE, "cam-01", "event"), b"{not json").wait_for_publish(5)
        stolen.event(ids.new_id())
        contradicting = ids.new_id()
        for size in (10, 20):  # the second chunk of this clip says another size than the first
            camera.send(
                messages.ClipChunk(
                    device="cam-01",
                    clip_id=contradicting,
                    index=0,
                    count=2,
                    size=size,
                    sha256="c" * 64,
                    chunk_sha256=hashlib.sha256(b"abcd").hexdigest(),
                    content_type="video/x-matroska",
                    data=messages.to_base64(b"abcd"),
                )
            )
        wait_for(lambda: running.ingest.counters.dead_letters >= 3, what="three dead letters")
        wait_for(lambda: central.db()["dispatches"].count == 1, what="the dispatch")
        wait_for(lambda: running.ingest.counters.clips_verified == 1, what="the clip verified")
    finally:
        for device in (camera, stolen, badge):
            device.stop()

    token = token_for(central, "technician")
    status, text = _get(f"{running.web.url}/metrics", token)
    assert status == 200
    metrics = _samples(text)
    chunks = 4  # 51,204 bytes in 16 KiB chunks
    received = 1 + 1 + chunks + 1 + 1 + 2  # location, event, clip chunks, broken, revoked, contradicting
    assert metrics[("kuzet_ingest_received_total", ())] == received
    # The location is routing's to store: ingest hands it on, and counts it so, not as stored.
    assert metrics[("kuzet_ingest_stored_total", ())] == received - 3 - 1
    assert metrics[("kuzet_ingest_handed_on_total", ())] == 1
    assert metrics[("kuzet_ingest_dead_letters_total", (("reason", "invalid"),))] == 1
    assert metrics[("kuzet_ingest_dead_letters_total", (("reason", "revoked"),))] == 1
    assert metrics[("kuzet_ingest_dead_letters_total", (("reason", "media"),))] == 1
    assert metrics[("kuzet_ingest_dead_letters_total", (("reason", "hook"),))] == 0
    assert metrics[("kuzet_ingest_clip_chunks_rejected_total", ())] == 1
    assert metrics[("kuzet_ingest_clips_total", (("outcome", "verified"),))] == 1
    batches = metrics[("kuzet_ingest_batches_total", ())]
    assert 1 <= batches <= received
    assert metrics[("kuzet_ingest_batch_size_count", ())] == batches
    assert metrics[("kuzet_ingest_batch_size_sum", ())] == received
    assert metrics[("kuzet_ingest_commit_seconds_count", ())] == batches
    assert metrics[("kuzet_ingest_batch_size_bucket", (("le", "+Inf"),))] == batches
    assert metrics[("kuzet_ingest_queue_depth", ())] == 0
    assert metrics[("kuzet_ingest_queue_max", ())] == central.config.ingest.queue_max
    assert metrics[("kuzet_ingest_mqtt_connected", ())] == 1
    assert metrics[("kuzet_ingest_writer_alive", ())] == 1
    assert metrics[("kuzet_ingest_media_queue_depth", ())] == 0  # the clip and snapshots stored by now
    assert metrics[("kuzet_dispatches", (("state", "sent"),))] == 1
    assert metrics[("kuzet_dispatch_escalations", ())] == 0
    assert metrics[("kuzet_devices", (("kind", "camera"), ("state", "revoked")))] == 1


def test_healthz_names_what_stops_central_doing_its_job(running, mosquitto):
    url = f"{running.web.url}/healthz"
    status, body = _get(url)
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["problems"] == []
    ingest = health["ingest"]
    assert ingest["mqtt"]["connected"] and ingest["mqtt"]["subscribed"]
    assert timeutil.from_wire(ingest["mqtt"]["since"]) <= timeutil.utc_now()
    assert ingest["writer_alive"] and ingest["queue_depth"] == 0
    assert ingest["queue_max"] == running.central.config.ingest.queue_max
    assert ingest["storage"] == {
        "database": "sqlite",
        "nearest_units": "in-process-distance",
        "media": {"kind": "local", "folder": str(running.central.media_dir)},
    }

    mosquitto.stop()  # the broker goes away: nothing from the devices can arrive
    status, body = wait_for(lambda: (r := _get(url))[0] == 503 and r, what="/healthz turning 503")
    health = json.loads(body)
    assert health["status"] == "unhealthy" and not health["ingest"]["mqtt"]["connected"]
    assert any("not connected to the MQTT broker" in problem for problem in health["problems"])
    assert timeutil.from_wire(health["ingest"]["mqtt"]["since"]) >= timeutil.from_wire(
        ingest["mqtt"]["since"]
    )
