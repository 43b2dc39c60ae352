"""A revoked device at central: ingest refuses what it sends (dead letters, counted, ingest carries on), routing
never sends a revoked badge, and only an explicit, audited reinstatement undoes a revocation."""

from __future__ import annotations

import argparse

import pytest
from support.ingest import dead_letter_rows, event, make_central, new_id, up, wait_for
from support.patrol import SITE, Camera, Centre, point
from support.web import make_central as make_web_central
from support.web import token_for

from kuzet.central import cli
from kuzet.central.auth import audit
from kuzet.central.ingest.service import IngestService
from kuzet.central.routing.service import RoutingError
from kuzet.central.store import registry
from kuzet.central.web import create_app
from kuzet.shared import messages, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Location
from kuzet.shared.mqtt import Link


def _register(central, device: str, kind: str = "camera") -> None:
    registration = registry.Registration(device_id=device, kind=kind, site=SITE)
    registry.register(central.db(), registration, actor="tech")


def test_a_revoked_device_is_dead_lettered_and_ingest_carries_on(tmp_path, mosquitto):
    central = make_central(tmp_path, mosquitto.url)
    for device in ("cam-stolen", "cam-good"):
        _register(central, device)
    assert registry.revoke(central.db(), "cam-stolen", actor="tech", reason="taken from its pole")
    ingest = IngestService(central).start()
    link = Link(MqttSection(url=mosquitto.url), "cameras").start()
    try:
        stolen_event = event("cam-stolen", new_id(), 0)
        status = messages.Status(device="cam-stolen", kind="camera", software_version="1.0", uptime_s=5)
        link.publish(up("cam-stolen", "event"), messages.encode(stolen_event)).wait_for_publish(5)
        link.publish(up("cam-stolen", "status"), messages.encode(status)).wait_for_publish(5)
        good_event = event("cam-good", new_id(), 0)
        link.publish(up("cam-good", "event"), messages.encode(good_event)).wait_for_publish(5)
        wait_for(
            lambda: ingest.counters.stored >= 1 and len(dead_letter_rows(central)) >= 2, what="both sorts"
        )

        letters = dead_letter_rows(central)
        assert [(row["topic"], row["reason"]) for row in letters] == [
            (up("cam-stolen", "event"), "device revoked"),
            (up("cam-stolen", "status"), "device revoked"),
        ]
        assert letters[0]["payload"] == messages.encode(stolen_event)  # kept for inspection
        assert ingest.counters.dead_letters_by_cause["revoked"] == 2
        stored = [row["event_id"] for row in central.db()["events"].rows]
        assert stored == [good_event.event_id]
        device = central.db()["devices"].get("cam-stolen")
        assert device["status"] is None and not device["online"]  # its heartbeat changed nothing

        # Still running: the next message from a registered device is stored as usual.
        later = event("cam-good", new_id(), 0)
        link.publish(up("cam-good", "event"), messages.encode(later)).wait_for_publish(5)
        wait_for(lambda: central.db()["events"].count == 2, what="the next event stored")
    finally:
        link.stop()
        ingest.stop()


def _locate(link: Link, device: str, at: tuple[float, float]) -> None:
    message = Location(
        device=device,
        ts=timeutil.utc_now(),
        position={"lat": at[0], "lon": at[1]},
        fix="gps",
        duty="available",
    )
    link.publish(topics.up(SITE, device, "location"), messages.encode(message)).wait_for_publish(5)


def test_routing_never_sends_a_revoked_badge(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url)
    badges = Link(MqttSection(url=mosquitto.url), "badges").start()
    camera = Camera(mosquitto.url)
    try:
        for device in ("badge-near", "badge-far"):
            _register(centre.central, device, kind="badge")
        _locate(badges, "badge-near", point(100))
        _locate(badges, "badge-far", point(900))
        wait_for(lambda: all(centre.unit(d) for d in ("badge-near", "badge-far")), what="both units known")
        assert centre.unit("badge-near").free()  # routing still has it in memory as free and closest
        registry.revoke(centre.db(), "badge-near", actor="tech", reason="reported stolen")

        event_id = camera.event(point(0))
        [dispatch] = wait_for(lambda: centre.dispatches(event_id=event_id), what="the dispatch")
        assert dispatch["unit"] == "badge-far"
        # badge-far is busy now: the next event waits rather than going to the revoked badge, and an
        # operator cannot send it by hand either.
        second = camera.event(point(0))
        wait_for(lambda: any("waiting" in text for text in centre.alert_texts()), what="the event waiting")
        with pytest.raises(RoutingError, match="revoked"):
            centre.routing.assign(second, "badge-near", actor="operator")
        assert not centre.dispatches(unit="badge-near")
    finally:
        camera.stop()
        badges.stop()
        centre.stop()


def test_re_registering_a_revoked_device_needs_an_explicit_audited_reinstatement(tmp_path):
    central = make_web_central(tmp_path)
    client = create_app(central).test_client()
    tech = {"Authorization": f"Bearer {token_for(central, 'technician')}"}
    body = {"device_id": "badge-07", "kind": "badge", "name": "Officer 7", "site": SITE}
    assert client.post("/api/v1/devices", json=body, headers=tech).status_code == 201
    assert (
        client.post("/api/v1/devices/badge-07/revoke", json={"reason": "lost"}, headers=tech).status_code
        == 200
    )

    refused = client.post("/api/v1/devices", json={**body, "name": "re-flashed"}, headers=tech)
    assert refused.status_code == 409 and "reinstate" in refused.get_json()["error"]
    device = client.get("/api/v1/devices/badge-07", headers=tech).get_json()
    assert device["revoked_at"] and device["name"] == "Officer 7"  # nothing changed

    no_reason = client.post("/api/v1/devices/badge-07/reinstate", json={}, headers=tech)
    assert no_reason.status_code == 400 and "reason" in no_reason.get_json()["error"]
    reinstated = client.post(
        "/api/v1/devices/badge-07/reinstate", json={"reason": "found in the patrol car"}, headers=tech
    )
    assert reinstated.status_code == 200 and reinstated.get_json()["revoked_at"] is None
    again = client.post("/api/v1/devices/badge-07/reinstate", json={"reason": "again"}, headers=tech)
    assert again.status_code == 409 and "not revoked" in again.get_json()["error"]  # the device's state
    assert (
        client.post("/api/v1/devices/badge-99/reinstate", json={"reason": "x"}, headers=tech).status_code
        == 404
    )
    assert client.post("/api/v1/devices", json=body, headers=tech).status_code == 200

    entries = audit.entries(central.db(), target="device:badge-07")
    assert [e["action"] for e in entries] == [
        "device.reregister",
        "device.reinstate",
        "device.revoke",
        "device.register",
    ]
    assert entries[1]["actor"] == "technician"
    assert "found in the patrol car" in str(entries[1]["detail"])


def test_reinstate_from_the_command_line(tmp_path, capsys):
    central = make_central(tmp_path)
    _register(central, "cam-9")
    registry.revoke(central.db(), "cam-9", actor="tech")
    args = argparse.Namespace(
        config=None, data_dir=str(central.data_dir), action="reinstate-device", device="cam-9", reason=""
    )
    assert cli.run(args) == 2 and "why" in capsys.readouterr().err
    args.reason = "replaced the SD card, new certificate issued"
    assert cli.run(args) == 0
    assert central.db()["devices"].get("cam-9")["revoked_at"] is None
    [entry] = audit.entries(central.db(), action="device.reinstate")
    assert entry["actor"].startswith("cli:")
