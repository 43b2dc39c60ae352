"""Patrols stood down when what they were sent for no longer holds, over a real Mosquitto with real badge agents:
a badge revoked while on a dispatch is taken off it (told, if it can still hear) and the event goes to the next
unit; an event an operator closes cancels every dispatch still under way to it, with the closing note."""

from __future__ import annotations

import pytest
from support.patrol import Centre, inbox_has, point, wait_for
from support.web import token_for

from kuzet.central.auth import audit, users
from kuzet.central.web import create_app
from kuzet.edge.badge.inbox import InboxError


@pytest.fixture
def centre(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url, ack_timeout_s=60)
    for role in ("operator", "technician"):
        users.create_user(centre.db(), role, "correct horse battery", role, actor="test")
    yield centre
    centre.stop()


@pytest.fixture
def api(centre):
    """The JSON API of central's page, acting through the running routing, as each role."""
    client = create_app(centre.central, routing_service=centre.routing).test_client()

    def call(role: str, path: str, body: dict):
        headers = {"Authorization": f"Bearer {token_for(centre.central, role)}"}
        return client.post(path, json=body, headers=headers)

    return call


def _actions(centre, target: str) -> list[tuple[str, str]]:
    return [(e["actor"], e["action"]) for e in reversed(audit.entries(centre.db(), target=target))]


def test_a_badge_revoked_on_a_dispatch_is_stood_down_and_the_event_goes_to_the_next_unit(
    centre, api, camera, badges
):
    stolen = badges("badge-near", point(100))
    next_unit = badges("badge-next", point(500))
    event_id = camera.event(point(0))
    [item] = wait_for(inbox_has(stolen), what="the dispatch at the nearest badge")
    stolen.acknowledge()
    wait_for(lambda: centre.dispatches(state="acknowledged"), what="acknowledged")

    answer = api("technician", "/api/v1/devices/badge-near/revoke", {"reason": "reported stolen"})
    assert answer.status_code == 200 and answer.get_json()["revoked_at"]

    # Its dispatch is cancelled at once, by whoever revoked it, and the badge is told while it can still hear.
    first = centre.db()["dispatches"].get(item.dispatch_id)
    assert first["state"] == "cancelled" and first["reason"] == "badge-near was revoked: reported stolen"
    assert centre.log_states(item.dispatch_id) == ["sent", "acknowledged", "cancelled"]
    wait_for(lambda: stolen.inbox.get(item.dispatch_id).state == "cancelled", what="the badge told")
    assert "revoked" in stolen.inbox.get(item.dispatch_id).reason
    assert _actions(centre, item.dispatch_id) == [
        ("routing", "dispatch.sent"),
        ("badge-near", "dispatch.acknowledged"),
        ("technician", "dispatch.cancelled"),
    ]
    [command] = audit.entries(centre.db(), action="device.command", target="device:badge-near")
    assert command["actor"] == "technician" and command["detail"]["name"] == "cancel_dispatch"

    # The event goes to the next unit, as the routing rules say (the nearest free one; attempt 2).
    [second] = wait_for(inbox_has(next_unit), what="the event at the next unit")
    assert second.dispatch.event_id == event_id
    row = centre.db()["dispatches"].get(second.dispatch_id)
    assert (row["unit"], row["attempt"], row["state"]) == ("badge-next", 2, "sent")
    event = centre.db()["events"].get(event_id)
    assert (event["status"], event["dispatched_unit"]) == ("dispatched", "badge-next")
    assert any("badge-near was revoked" in text for text in centre.alert_texts())
    unit = centre.unit("badge-near")
    assert not unit.online and unit.current_dispatch is None

    # The officer can no longer work the dispatch, and what the revoked badge still sends (its answer to the
    # cancellation) is refused by ingest and kept; the next unit carries on.
    with pytest.raises(InboxError, match="already cancelled"):
        stolen.en_route(item.dispatch_id)
    wait_for(
        lambda: centre.db()["dead_letters"].count_where("reason = 'device revoked'"),
        what="its answer refused",
    )
    next_unit.acknowledge()
    wait_for(lambda: centre.dispatches(unit="badge-next", state="acknowledged"), what="the next unit answers")
    assert audit.verify(centre.db()) == (True, None)


def test_a_revocation_through_the_one_door_stands_the_badge_down(centre, camera, badges):
    """``Operations.revoke_device`` (what the page, the API and scripts in the process call): the dispatch is
    cancelled in the same transaction as the revocation."""
    lost = badges("badge-lost", point(100))
    camera.event(point(0))
    [item] = wait_for(inbox_has(lost), what="the dispatch")

    assert centre.operations.revoke_device("badge-lost", actor="tech", reason="left in a taxi")

    assert centre.dispatches(state="cancelled")
    assert _actions(centre, item.dispatch_id)[-1] == ("tech", "dispatch.cancelled")
    wait_for(lambda: lost.inbox.get(item.dispatch_id).state == "cancelled", what="the badge told")
    # No other unit on duty: the event waits for one, and the operators are told.
    wait_for(lambda: centre.routing.waiting(), what="the event waiting for a unit")


def test_closing_an_event_cancels_every_dispatch_still_under_way(centre, api, camera, badges):
    near = badges("badge-near", point(100))
    other = badges("badge-other", point(0, 400))
    event_id = camera.event(point(0))
    [item] = wait_for(inbox_has(near), what="the dispatch")
    near.acknowledge()
    near.en_route()
    wait_for(lambda: centre.dispatches(state="en_route"), what="en route")
    sent = api("operator", "/api/v1/dispatches/intercept", {"event_id": event_id, "radius_m": 1000})
    assert sent.status_code == 201
    [intercept] = wait_for(inbox_has(other), what="the intercept at the other badge")

    note = "False alarm: a street performer, moved on by the station guard"
    closed = api("operator", f"/api/v1/events/{event_id}/close", {"note": note})
    assert closed.status_code == 200 and closed.get_json()["event"]["status"] == "closed"

    reason = f"event closed by operator: {note}"
    for agent, dispatch_id, states in (
        (near, item.dispatch_id, ["sent", "acknowledged", "en_route", "cancelled"]),
        (other, intercept.dispatch_id, ["sent", "cancelled"]),
    ):
        row = centre.db()["dispatches"].get(dispatch_id)
        assert (row["state"], row["reason"]) == ("cancelled", reason)
        assert centre.log_states(dispatch_id) == states
        assert _actions(centre, dispatch_id)[-1] == ("operator", "dispatch.cancelled")
        # The badge is told why, and its officer is free again.
        wait_for(lambda a=agent, d=dispatch_id: a.inbox.get(d).state == "cancelled", what="the badge told")
        assert agent.inbox.get(dispatch_id).reason == reason and agent.inbox.current() is None
        wait_for(lambda a=agent: centre.unit(a.device).free(), what=f"{agent.device} free again")
        # The page saw the cancellation live.
        assert any(
            u["dispatch_id"] == dispatch_id and u["state"] == "cancelled" for u in centre.updates("dispatch")
        )
    commands = audit.entries(centre.db(), action="device.command")
    assert sorted(e["target"] for e in commands) == ["device:badge-near", "device:badge-other"]
    assert all(e["actor"] == "operator" and e["detail"]["args"]["reason"] == reason for e in commands)
    # Closed means nobody is sent again: no new dispatch, nothing waiting.
    assert len(centre.dispatches(event_id=event_id)) == 2 and centre.routing.waiting() == []
    assert ("operator", "event.close") in _actions(centre, f"event:{event_id}")
    refused = api("operator", "/api/v1/dispatches", {"event_id": event_id, "unit": "badge-near"})
    assert refused.status_code == 409 and "closed" in refused.get_json()["error"]
    # Both badges answered the cancellation.
    wait_for(
        lambda: centre.db()["commands"].count_where("state = 'ok'") == 2, what="the badges' answers recorded"
    )


def test_an_event_closed_through_the_one_door_stands_its_patrol_down(centre, camera, badges):
    near = badges("badge-near", point(100))
    event_id = camera.event(point(0))
    [item] = wait_for(inbox_has(near), what="the dispatch")

    centre.operations.close_event(event_id, "supervisor", "Handled by the city guard")

    wait_for(lambda: near.inbox.get(item.dispatch_id).state == "cancelled", what="the badge told")
    assert near.inbox.get(item.dispatch_id).reason == "event closed by supervisor: Handled by the city guard"
    assert _actions(centre, item.dispatch_id)[-1] == ("supervisor", "dispatch.cancelled")
