"""Routing decisions on their own: which events need a patrol, who is eligible, panic, positions from the
camera, and state that survives a restart of central. Messages go straight to the service's ingest hook;
what it sends goes through a real Mosquitto to a listener."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.ingest import make_central
from support.patrol import SITE, point, wait_for

from kuzet.central.routing import geo
from kuzet.central.routing.config import RuleSection
from kuzet.central.routing.service import RoutingService
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Dispatch, DispatchState, Event, Location, decode
from kuzet.shared.mqtt import Link


def test_geo():
    # Pavlodar to Kostanay, about 905 km as the crow flies.
    assert geo.haversine_m(52.2873, 76.9674, 53.2144, 63.6246) == pytest.approx(905_000, rel=0.02)
    north = geo.offset(52.0, 77.0, 1000, 0)
    assert geo.haversine_m(52.0, 77.0, *north) == pytest.approx(1000, rel=1e-3)
    assert geo.bearing_deg(52.0, 77.0, *geo.offset(52.0, 77.0, 0, 500)) == pytest.approx(90, abs=0.1)
    assert geo.travel_m(52.0, 77.0, *north, detour_factor=1.3) == pytest.approx(1300, rel=1e-3)


@pytest.fixture
def routed(tmp_path, mosquitto):
    central = make_central(tmp_path, mosquitto.url, routing={"ack_timeout_s": 1, "max_attempts": 2})
    sent: list[Dispatch] = []
    link = Link(MqttSection(url=mosquitto.url), "central-test")
    listener = Link(MqttSection(url=mosquitto.url), "listener")
    listener.subscribe(f"{topics.ROOT}/+/+/down/dispatch", lambda t, p: sent.append(decode(t, p)))
    listener.start()
    link.start()
    central.publish = lambda topic, payload: link.publish(topic, payload)
    service = RoutingService(central).start()
    yield central, service, sent
    service.stop()
    link.stop()
    listener.stop()


def locate(service, device, at, duty="available", age_s=0.0):
    service.handle(
        Location(
            device=device,
            ts=timeutil.utc_now() - timedelta(seconds=age_s),
            position={"lat": at[0], "lon": at[1]},
            fix="gps",
            duty=duty,
        ),
        SITE,
    )


def event(at, event_type="loitering", severity="high", device="cam-1", **fields):
    return Event(
        device=device,
        event_id=ids.new_id(),
        seq=0,
        state="open",
        event_type=event_type,
        severity=severity,
        label="person",
        score=0.8,
        started_at=timeutil.utc_now(),
        location={"lat": at[0], "lon": at[1]} if at else None,
        **fields,
    )


def test_only_free_fresh_capable_units_are_recommended(routed):
    central, service, sent = routed
    central.config.routing.rules = {"no_stopping": RuleSection(capabilities=["vehicle"])}
    locate(service, "badge-busy", point(50), duty="busy")
    locate(service, "badge-stale", point(60), age_s=3600)
    locate(service, "badge-foot", point(100))
    locate(service, "badge-car", point(800))
    service.drain()
    service.edit_unit("badge-car", "test", None, ["vehicle"])

    service.handle(event(point(0)), SITE)
    service.handle(event(point(0), event_type="no_stopping"), SITE)
    service.handle(event(point(0), severity="low"), SITE)  # below min_severity: no patrol
    service.handle(event(point(0), event_type="zone_exit"), SITE)  # not a patrol event type
    service.drain()
    assert sorted(
        d.device for d in wait_for(lambda: sent if len(sent) >= 2 else None, what="two dispatches")
    ) == [
        "badge-car",
        "badge-foot",
    ]
    assert central.db()["dispatches"].count == 2


def test_panic_goes_to_the_nearest_other_officer(routed):
    central, service, sent = routed
    locate(service, "badge-1", point(0))
    locate(service, "badge-2", point(300))
    locate(service, "badge-3", point(900))
    service.handle(event(point(0), event_type="panic", severity="critical", device="badge-1"), SITE)
    [dispatch] = wait_for(lambda: sent, what="backup dispatched")
    assert dispatch.device == "badge-2" and dispatch.severity == "critical" and dispatch.event_type == "panic"


def test_event_without_position_uses_the_camera_or_alerts(routed):
    central, service, sent = routed
    alerts = central.hub.subscribe()
    central.db()["devices"].insert(
        {"device_id": "cam-known", "kind": "camera", "lat": point(10)[0], "lon": point(10)[1]}
    )
    locate(service, "badge-1", point(100))
    service.handle(event(None, device="cam-unplaced"), SITE)
    service.handle(event(None, device="cam-known"), SITE)
    [dispatch] = wait_for(lambda: sent, what="dispatch to the camera's place")
    assert dispatch.place.lat == pytest.approx(point(10)[0])
    texts = []
    while (update := alerts.get(0.1)) is not None:
        texts.append(update.data.get("message", ""))
    assert any("cam-unplaced" in t and "no position" in t for t in texts)


def test_attempts_are_bounded_and_state_survives_a_restart(routed, tmp_path):
    central, service, sent = routed
    for index, north in enumerate((100, 200, 300)):
        locate(service, f"badge-{index}", point(north))
    service.handle(event(point(0)), SITE)
    # max_attempts = 2: two units time out, then the operator is told; the third is not tried.
    wait_for(lambda: central.db()["dispatches"].count_where("state = 'timed_out'") == 2, what="two timeouts")
    service.drain()
    assert [d.device for d in sent] == ["badge-0", "badge-1"]

    # A dispatch waiting for its acknowledgement keeps its deadline across a restart of central.
    central.config.routing.ack_timeout_s = 2
    service.handle(event(point(290)), SITE)
    [late] = wait_for(lambda: [d for d in sent if d.device == "badge-2"], what="third dispatch")
    service.stop()
    restarted = RoutingService(central).start()
    try:
        assert restarted.units.get("badge-2").current_dispatch == late.dispatch_id
        wait_for(
            lambda: central.db()["dispatches"].get(late.dispatch_id)["state"] == "timed_out",
            what="the deadline kept across the restart",
        )
        restarted.handle(
            DispatchState(device="badge-2", dispatch_id=late.dispatch_id, state="acknowledged"), SITE
        )
        restarted.drain()
        assert central.db()["dispatches"].get(late.dispatch_id)["state"] == "timed_out"
    finally:
        restarted.stop()
