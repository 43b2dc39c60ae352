"""Diverting a busy unit to a more urgent incident, end to end: a real broker, real ingest and routing, real
badge agents, requests through the API. The event the unit leaves waits again and goes to the next free
unit; the badge is told; the operators are alerted; a diversion to a less urgent event is refused."""

from __future__ import annotations

import pytest
from support.patrol import Camera, Centre, inbox_has, point, start_badge, wait_for

from kuzet.central.auth import tokens, users
from kuzet.central.web import create_app

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def setup(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url, policy="auto", ack_timeout_s=60)
    camera = Camera(mosquitto.url)
    users.create_user(centre.db(), "aigerim", PASSWORD, "operator")
    client = create_app(centre.central, centre.routing).test_client()
    headers = {"Authorization": f"Bearer {tokens.create_token(centre.db(), 'aigerim', 'test', actor='test')}"}
    agents = {}

    def badge(name, at):
        agents[name] = start_badge(tmp_path, mosquitto.url, name, at, centre)
        return agents[name]

    yield centre, camera, badge, client, headers
    for agent in agents.values():
        agent.stop()
    camera.stop()
    centre.stop()


def test_a_busy_unit_is_diverted_and_the_event_it_leaves_goes_to_the_next_free_unit(setup):
    centre, camera, badge, client, headers = setup
    alpha = badge("badge-alpha", point(100))
    crowd = camera.event(point(0), event_type="crowd", severity="medium")
    [first] = wait_for(inbox_has(alpha), what="the crowd dispatch at badge-alpha")
    alpha.acknowledge()
    wait_for(
        lambda: centre.dispatches(dispatch_id=first.dispatch_id)[0]["state"] == "acknowledged", what="ack"
    )

    panic = camera.event(point(200), event_type="panic", severity="critical")
    wait_for(lambda: panic in centre.routing.waiting(), what="the panic waiting: no free unit")

    # A less urgent event may not take the unit; nor may the event it is on, or a unit that is not busy.
    refused = client.post("/api/v1/units/badge-alpha/divert", json={"event_id": crowd}, headers=headers)
    assert refused.status_code == 409 and "already on this event" in refused.json["error"]
    low = camera.event(point(50), event_type="loitering", severity="low")
    wait_for(lambda: centre.db()["events"].count_where("event_id = ?", [low]), what="the low event stored")
    refused = client.post("/api/v1/units/badge-alpha/divert", json={"event_id": low}, headers=headers)
    assert refused.status_code == 409 and "not more urgent" in refused.json["error"]
    missing = client.post("/api/v1/units/badge-nobody/divert", json={"event_id": panic}, headers=headers)
    assert missing.status_code == 404
    assert client.post("/api/v1/units/badge-alpha/divert", json={}, headers=headers).status_code == 400
    assert centre.dispatches(dispatch_id=first.dispatch_id)[0]["state"] == "acknowledged"  # nothing changed

    response = client.post(
        "/api/v1/units/badge-alpha/divert",
        json={"event_id": panic, "reason": "panic button nearby"},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    new = response.json
    assert (new["unit"], new["event_id"], new["mode"], new["state"]) == (
        "badge-alpha",
        panic,
        "manual",
        "sent",
    )

    # The badge: its crowd dispatch taken back with the reason, the panic in its inbox.
    wait_for(
        lambda: alpha.inbox.get(first.dispatch_id).state == "cancelled",
        what="the old dispatch cancelled at the badge",
    )
    assert "panic button nearby" in (alpha.inbox.get(first.dispatch_id).reason or "")
    wait_for(inbox_has(alpha, new["dispatch_id"]), what="the panic dispatch at the badge")
    assert centre.log_states(first.dispatch_id) == ["sent", "acknowledged", "diverted"]
    assert centre.unit("badge-alpha").current_dispatch == new["dispatch_id"]  # never free in between

    # The crowd event waits again, no longer dispatched; the operators are told.
    event = centre.db()["events"].get(crowd)
    assert (event["status"], event["dispatched_unit"]) == ("acknowledged", None)
    assert crowd in centre.routing.waiting() and panic not in centre.routing.waiting()
    assert ("aigerim", "event.returned_to_waiting") in centre.event_audit(crowd)
    assert any("diverted from the medium crowd event" in text for text in centre.alert_texts())

    # The next free unit takes the crowd event.
    bravo = badge("badge-bravo", point(-300))
    [second] = wait_for(inbox_has(bravo), what="the crowd event at the next free unit")
    assert second.dispatch.event_id == crowd
    assert crowd not in centre.routing.waiting()
    assert centre.db()["events"].get(crowd)["dispatched_unit"] == "badge-bravo"


def test_a_unit_taken_from_an_intercept_leaves_the_event_to_the_others(setup):
    centre, camera, badge, client, headers = setup
    alpha, bravo = badge("badge-alpha", point(100)), badge("badge-bravo", point(-100))
    crowd = camera.event(point(0), event_type="crowd", severity="low")  # below routing's min severity
    wait_for(lambda: centre.db()["events"].count_where("event_id = ?", [crowd]), what="the crowd stored")
    sent = client.post(
        "/api/v1/dispatches/intercept", json={"event_id": crowd, "radius_m": 500}, headers=headers
    )
    assert sent.status_code == 201 and len(sent.json["dispatches"]) == 2
    wait_for(inbox_has(alpha), what="the intercept at badge-alpha")
    panic = camera.event(point(150), event_type="panic", severity="critical")
    wait_for(lambda: panic in centre.routing.waiting(), what="the panic waiting")

    response = client.post("/api/v1/units/badge-alpha/divert", json={"event_id": panic}, headers=headers)
    assert response.status_code == 201
    assert crowd not in centre.routing.waiting()  # badge-bravo is still on it
    assert centre.db()["events"].get(crowd)["status"] == "dispatched"
    assert any("the crowd event keeps its other units" in text for text in centre.alert_texts())
    assert [d["unit"] for d in centre.dispatches(event_id=crowd, state="sent")] == ["badge-bravo"]
    assert bravo.inbox.items()
