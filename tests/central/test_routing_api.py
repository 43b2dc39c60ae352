"""The routing API as an operator uses it: confirm a recommendation, override, assign by hand, intercept.
Real broker, real ingest and routing, real badge agents; requests through Flask with bearer tokens."""

from __future__ import annotations

import pytest
from support.patrol import Camera, Centre, inbox_has, point, start_badge, wait_for

from kuzet.central.auth import tokens, users
from kuzet.central.web import create_app

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def setup(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url, policy="confirm", ack_timeout_s=30)
    camera = Camera(mosquitto.url)
    agents = {
        name: start_badge(tmp_path, mosquitto.url, name, at, centre)
        for name, at in (
            ("badge-near", point(150)),
            ("badge-far", point(0, 800)),
            ("badge-third", point(-500)),
        )
    }
    db = centre.db()
    users.create_user(db, "aigerim", PASSWORD, "operator")
    users.create_user(db, "tech", PASSWORD, "technician")
    app = create_app(centre.central, centre.routing)
    client = app.test_client()
    headers = {
        role: {"Authorization": f"Bearer {tokens.create_token(db, name, 'test', actor='test')}"}
        for role, name in (("operator", "aigerim"), ("technician", "tech"))
    }
    yield centre, camera, agents, client, headers
    for agent in agents.values():
        agent.stop()
    camera.stop()
    centre.stop()


def test_confirm_policy_recommend_confirm_reassign_and_cancel(setup):
    centre, camera, agents, client, headers = setup
    event_id = camera.event(point(0))
    [proposal] = wait_for(lambda: centre.dispatches(state="proposed"), what="a proposal for the operator")
    assert proposal["unit"] == "badge-near"
    assert agents["badge-near"].inbox.items() == []  # nothing is sent before the operator confirms

    assert client.get(f"/api/v1/dispatches/recommend?event_id={event_id}").status_code == 401
    ranked = client.get(f"/api/v1/dispatches/recommend?event_id={event_id}", headers=headers["operator"]).json
    assert [u["device_id"] for u in ranked["units"]] == ["badge-near", "badge-third", "badge-far"]

    confirm = f"/api/v1/dispatches/{proposal['dispatch_id']}/confirm"
    assert client.post(confirm, headers=headers["technician"]).status_code == 403
    response = client.post(confirm, headers=headers["operator"])
    assert response.status_code == 200 and response.json["state"] == "sent"
    [item] = wait_for(inbox_has(agents["badge-near"]), what="dispatch at the badge")
    assert client.post(confirm, headers=headers["operator"]).status_code == 409  # not twice

    # Override: the operator gives the event to another unit; the first badge is told.
    response = client.post(
        f"/api/v1/dispatches/{item.dispatch_id}/reassign",
        json={"unit": "badge-far", "reason": "badge-far has the car"},
        headers=headers["operator"],
    )
    assert (
        response.status_code == 201
        and response.json["unit"] == "badge-far"
        and response.json["mode"] == "manual"
    )
    wait_for(
        lambda: agents["badge-near"].inbox.get(item.dispatch_id).state == "cancelled", what="cancel at badge"
    )
    [manual] = wait_for(inbox_has(agents["badge-far"]), what="manual dispatch at badge-far")
    # Reassigning to a unit that is busy is refused and changes nothing.
    refused = client.post(
        f"/api/v1/dispatches/{manual.dispatch_id}/reassign",
        json={"unit": "badge-far"},
        headers=headers["operator"],
    )
    assert refused.status_code == 409 and centre.dispatches(unit="badge-far")[0]["state"] == "sent"
    assert manual.dispatch.mode == "manual"
    wait_for(lambda: centre.unit("badge-near").free(), what="badge-near free again")

    # Cancel needs a reason; a cancelled dispatch cannot be cancelled again.
    cancel = f"/api/v1/dispatches/{manual.dispatch_id}/cancel"
    assert client.post(cancel, json={}, headers=headers["operator"]).status_code == 400
    assert client.post(cancel, json={"reason": "false alarm"}, headers=headers["operator"]).status_code == 200
    assert client.post(cancel, json={"reason": "again"}, headers=headers["operator"]).status_code == 409

    detail = client.get(f"/api/v1/dispatches/{item.dispatch_id}", headers=headers["operator"]).json
    assert [e["state"] for e in detail["log"]] == ["proposed", "confirmed", "sent", "cancelled"]
    assert detail["log"][1]["by"] == "aigerim"
    actors = {r["actor"] for r in centre.db()["audit"].rows_where("action like 'dispatch.%'")}
    assert "aigerim" in actors


def test_manual_assignment_is_checked(setup):
    centre, camera, agents, client, headers = setup
    event_id = camera.event(point(0))
    wait_for(lambda: centre.dispatches(state="proposed"), what="proposal")
    post = lambda body: client.post("/api/v1/dispatches", json=body, headers=headers["operator"])  # noqa: E731
    assert post({"event_id": event_id, "unit": "badge-nobody"}).status_code == 404
    assert post({"event_id": event_id}).status_code == 400
    assert client.post("/api/v1/dispatches", data="x", headers=headers["operator"]).status_code == 400
    response = post({"event_id": event_id, "unit": "badge-third", "note": "bring the first-aid kit"})
    assert response.status_code == 201
    [item] = wait_for(inbox_has(agents["badge-third"]), what="manual dispatch")
    assert "first-aid kit" in item.dispatch.description
    assert post({"event_id": event_id, "unit": "badge-third"}).status_code == 409  # already busy
    # The proposal the operator did not take is withdrawn.
    assert centre.dispatches(state="proposed") == []


def test_intercept_by_position_and_units_list(setup):
    centre, camera, agents, client, headers = setup
    lat, lon = point(0)
    response = client.post(
        "/api/v1/dispatches/intercept",
        json={
            "lat": lat,
            "lon": lon,
            "direction_deg": 270,
            "radius_m": 600,
            "description": "white Lada, north",
        },
        headers=headers["operator"],
    )
    assert response.status_code == 201
    assert {d["unit"] for d in response.json["dispatches"]} == {"badge-near", "badge-third"}
    [item] = wait_for(inbox_has(agents["badge-third"]), what="intercept at badge-third")
    assert item.dispatch.direction_deg == 270 and item.dispatch.description == "white Lada, north"
    assert (
        client.post(
            "/api/v1/dispatches/intercept", json={"lat": 91, "lon": 0}, headers=headers["operator"]
        ).status_code
        == 400
    )

    units = client.get("/api/v1/units", headers=headers["operator"]).json["units"]
    busy = {u["device_id"] for u in units if u["current_dispatch"]}
    assert busy == {"badge-near", "badge-third"}
    response = client.patch(
        "/api/v1/units/badge-far",
        json={"capabilities": ["vehicle"], "callsign": "Berkut-2"},
        headers=headers["operator"],
    )
    assert response.json["capabilities"] == ["vehicle"] and response.json["callsign"] == "Berkut-2"
