"""The unit board: statuses, time in status, distances and who may be diverted (central.routing.board, pure),
and the board and "send nearest" through the API against real routing, a real broker and real badges."""

from __future__ import annotations

import pytest
from support.patrol import Camera, Centre, inbox_has, point, start_badge, wait_for

from kuzet.central.auth import tokens, users
from kuzet.central.routing import board
from kuzet.central.routing.planner import Incident
from kuzet.central.routing.units import Unit
from kuzet.central.web import create_app

PASSWORD = "correct horse battery staple 42"


def unit(device, north_m=0.0, **fields) -> Unit:
    lat, lon = point(north_m)
    values = dict(device_id=device, callsign=device.upper(), lat=lat, lon=lon, duty="available", online=True)
    return Unit(**{**values, **fields}, status_since="2026-12-05T06:00:00.000Z")


def dispatch(device, state, event_id="ev-low", updated_at="2026-12-05T06:30:00.000Z") -> dict:
    return {
        "dispatch_id": f"d-{device}",
        "unit": device,
        "state": state,
        "mode": "nearest",
        "event_id": event_id,
        "updated_at": updated_at,
    }


def test_statuses_in_the_boards_order_with_since_distance_and_who_may_be_diverted():
    units = [
        unit("p-off", duty="off_duty"),
        unit("p-gone", online=False),
        unit("p-far", 900),
        unit("p-near", 100),
        unit("p-busy", 50, current_dispatch="d-p-busy"),
        unit("p-revoked", 10),
        unit("p-nowhere", lat=None, lon=None),
    ]
    held = {"p-busy": dispatch("p-busy", "en_route")}
    events = {"ev-low": {"event_type": "loitering", "severity": "medium", "label": "person"}}
    selected = Incident("ev-panic", "pavlodar", "panic", "critical", *point(0))
    rows = board.rows(units, {"p-revoked"}, held, events, selected, detour_factor=1.3)
    assert [(r["device_id"], r["status"]) for r in rows] == [
        ("p-near", "available"),
        ("p-far", "available"),
        ("p-nowhere", "available"),
        ("p-busy", "en_route"),
        ("p-off", "off_duty"),
        ("p-gone", "offline"),
        ("p-revoked", "revoked"),
    ]
    by_id = {r["device_id"]: r for r in rows}
    assert by_id["p-near"]["distance_m"] == pytest.approx(130, abs=1)  # 100 m straight x detour 1.3
    assert by_id["p-nowhere"]["distance_m"] is None
    # A dispatch's state is the unit's status, and began when the dispatch last changed.
    assert by_id["p-busy"]["status_since"] == "2026-12-05T06:30:00.000Z"
    assert by_id["p-near"]["status_since"] == "2026-12-05T06:00:00.000Z"
    assert by_id["p-busy"]["dispatch"]["event_type"] == "loitering"
    assert [r["device_id"] for r in rows if r["may_divert"]] == ["p-busy"]


@pytest.mark.parametrize(
    ("busy_with", "selected", "allowed"),
    [
        ("medium", "critical", True),
        ("high", "critical", True),
        ("high", "high", False),
        ("critical", "high", False),
    ],
)
def test_only_a_more_urgent_incident_may_take_a_busy_unit(busy_with, selected, allowed):
    held = {"p-busy": dispatch("p-busy", "on_scene")}
    events = {"ev-low": {"event_type": "crowd", "severity": busy_with, "label": "people"}}
    incident = Incident("ev-new", "pavlodar", "panic", selected, *point(0))
    [row] = board.rows([unit("p-busy", current_dispatch="d-p-busy")], set(), held, events, incident, 1.3)
    assert row["may_divert"] is allowed


def test_a_unit_is_not_diverted_to_the_incident_it_is_already_on():
    held = {"p-busy": dispatch("p-busy", "sent", event_id="ev-same")}
    events = {"ev-same": {"event_type": "crowd", "severity": "low", "label": ""}}
    incident = Incident("ev-same", "pavlodar", "crowd", "critical", *point(0))
    [row] = board.rows([unit("p-busy", current_dispatch="d-p-busy")], set(), held, events, incident, 1.3)
    assert row["may_divert"] is False


def test_status_since_moves_only_when_the_status_changes(tmp_path):
    from kuzet.central.routing.units import Units

    class Repository:
        def load_units(self):
            return [unit("p-1")]

    units = Units(Repository())
    first = units.set_dispatch("p-1", "d-1").status_since
    assert first != "2026-12-05T06:00:00.000Z"
    assert units.set_dispatch("p-1", "d-1").status_since == first  # the same dispatch again: no change
    assert units.set_offline("p-1").status_since >= first


# --- through the API, with real routing, broker and badges -----------------------------------------------


@pytest.fixture
def setup(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url, policy="confirm", ack_timeout_s=30)
    camera = Camera(mosquitto.url)
    agents = {
        name: start_badge(tmp_path, mosquitto.url, name, at, centre)
        for name, at in (("badge-near", point(150)), ("badge-far", point(0, 800)))
    }
    db = centre.db()
    users.create_user(db, "aigerim", PASSWORD, "operator")
    client = create_app(centre.central, centre.routing).test_client()
    headers = {"Authorization": f"Bearer {tokens.create_token(db, 'aigerim', 'test', actor='test')}"}
    yield centre, camera, agents, client, headers
    for agent in agents.values():
        agent.stop()
    camera.stop()
    centre.stop()


def test_the_board_shows_distances_and_send_nearest_dispatches_in_one_request(setup):
    centre, camera, agents, client, headers = setup
    event_id = camera.event(point(0))
    [proposal] = wait_for(lambda: centre.dispatches(state="proposed"), what="a proposal")

    answer = client.get(f"/api/v1/unit-board?event_id={event_id}", headers=headers).json
    assert answer["nearest"] == "badge-near"
    assert [(u["device_id"], u["status"]) for u in answer["units"]] == [
        ("badge-near", "available"),
        ("badge-far", "available"),
    ]
    assert answer["units"][0]["distance_m"] == pytest.approx(150 * 1.3, abs=2)
    assert answer["units"][0]["status_since"]

    response = client.post("/api/v1/dispatches/nearest", json={"event_id": event_id}, headers=headers)
    assert response.status_code == 201
    assert (response.json["unit"], response.json["mode"], response.json["state"]) == (
        "badge-near",
        "nearest",
        "sent",
    )
    wait_for(inbox_has(agents["badge-near"], response.json["dispatch_id"]), what="the dispatch at the badge")
    assert centre.dispatches(dispatch_id=proposal["dispatch_id"])[0]["state"] == "cancelled"  # superseded

    answer = client.get(f"/api/v1/unit-board?event_id={event_id}", headers=headers).json
    near = next(u for u in answer["units"] if u["device_id"] == "badge-near")
    assert near["dispatch"]["event_id"] == event_id and near["dispatch"]["event_type"] == "loitering"
    assert answer["nearest"] == "badge-far"  # badge-near is busy now
    assert [u["device_id"] for u in answer["units"]] == ["badge-far", "badge-near"]  # who can go first

    def status_of(device):
        units = client.get("/api/v1/unit-board", headers=headers).json["units"]
        return next(u["status"] for u in units if u["device_id"] == device)

    agents["badge-near"].acknowledge()
    wait_for(lambda: status_of("badge-near") == "acknowledged", what="the acknowledgement on the board")

    # Bad input is refused with a reason and changes nothing.
    assert client.post("/api/v1/dispatches/nearest", json={}, headers=headers).status_code == 400
    missing = client.post("/api/v1/dispatches/nearest", json={"event_id": "01" + "0" * 24}, headers=headers)
    assert missing.status_code == 404 and "unknown" in missing.json["error"]
    assert client.get("/api/v1/unit-board?event_id=nope", headers=headers).status_code == 404


def test_intercept_preview_counts_the_units_the_intercept_then_sends_and_changes_nothing(setup):
    centre, camera, agents, client, headers = setup
    event_id = camera.event(point(0))
    [proposal] = wait_for(lambda: centre.dispatches(state="proposed"), what="routing's proposal")
    before = len(centre.dispatches())

    def preview(**where):
        return client.post("/api/v1/dispatches/intercept/preview", json=where, headers=headers)

    near = preview(event_id=event_id, radius_m=500).json
    assert (near["count"], [u["device_id"] for u in near["units"]]) == (1, ["badge-near"])
    both = preview(event_id=event_id, radius_m=1000).json
    assert both["count"] == 2 and both["radius_m"] == 1000
    by_place = preview(lat=point(0)[0], lon=point(0)[1], radius_m=1000).json
    assert by_place["count"] == 2
    assert len(centre.dispatches()) == before  # asking sends nobody

    assert preview(radius_m=1000).status_code == 400  # no place
    assert preview(event_id="01" + "0" * 24).status_code == 404

    sent = client.post(
        "/api/v1/dispatches/intercept", json={"event_id": event_id, "radius_m": 1000}, headers=headers
    )
    assert sent.status_code == 201
    assert sorted(d["unit"] for d in sent.json["dispatches"]) == sorted(u["device_id"] for u in both["units"])
    assert preview(event_id=event_id, radius_m=1000).json["count"] == 0  # all of them are busy now
    assert centre.dispatches(dispatch_id=proposal["dispatch_id"])[0]["state"] == "cancelled"  # superseded
