"""The loop the product exists for, end to end over a real Mosquitto: a camera event goes through ingest and
routing to the nearest badge agent, which answers as an officer would."""

from __future__ import annotations

import hashlib

import pytest
from support.patrol import (
    SITE,
    BadgeProcess,
    Camera,
    Centre,
    badge_process,
    inbox_has,
    point,
    start_badge,
    wait_for,
)

from kuzet.edge.badge.inbox import InboxError
from kuzet.shared import ids, topics
from kuzet.shared.messages import DispatchState, Snapshot, encode, from_base64, to_base64


@pytest.fixture
def centre(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url, ack_timeout_s=2)
    yield centre
    centre.stop()


def test_camera_event_dispatches_nearest_badge_through_to_resolved(centre, camera, badges):
    near = badges("badge-near", point(200))
    far = badges("badge-far", point(900))
    event_id = camera.event(point(0))

    [item] = wait_for(inbox_has(near), what="the dispatch at the nearest badge")
    dispatch = item.dispatch
    assert dispatch.event_id == event_id and dispatch.mode == "nearest"
    assert 200 < dispatch.distance_m < 300  # 200 m straight, times the detour factor
    assert far.inbox.items() == []

    near.acknowledge()
    near.en_route()
    near.on_scene()
    near.resolve("Two persons moved on; no offence.")
    wait_for(lambda: centre.dispatches(state="resolved"), what="resolved at central")

    [row] = centre.dispatches()
    assert row["unit"] == "badge-near" and row["note"] == "Two persons moved on; no offence."
    assert centre.log_states(row["dispatch_id"]) == [
        "sent",
        "acknowledged",
        "en_route",
        "on_scene",
        "resolved",
    ]
    event = centre.db()["events"].get(event_id)
    assert event["status"] == "closed" and event["closed_note"] == "Two persons moved on; no offence."
    # The unit is routing's, kept apart from the account an operator assigns to follow the event up.
    assert event["dispatched_unit"] == "badge-near" and event["assigned_to"] is None
    # Routing's changes to the event are audited and announced live, like an operator's.
    assert centre.event_audit(event_id) == [("routing", "event.dispatched"), ("badge-near", "event.close")]
    assert [u["event_id"] for u in centre.updates("event")].count(event_id) >= 3  # new, dispatched, closed
    actions = [r["action"] for r in centre.db()["audit"].rows_where("target = ?", [row["dispatch_id"]])]
    assert actions == [
        "dispatch.sent",
        "dispatch.acknowledged",
        "dispatch.en_route",
        "dispatch.on_scene",
        "dispatch.resolved",
    ]
    # The officer is free again once the badge reports the new duty status.
    wait_for(lambda: centre.unit("badge-near").free(), what="the unit free again")


def test_no_acknowledgement_escalates_to_next_unit_and_alerts(centre, camera, badges):
    near = badges("badge-near", point(100))
    second = badges("badge-second", point(600))
    camera.event(point(0))
    [first] = wait_for(inbox_has(near), what="first dispatch")

    # badge-near never answers: after 2 s the next nearest unit gets the task.
    [escalated] = wait_for(inbox_has(second), what="escalated dispatch")
    assert escalated.dispatch.event_id == first.dispatch.event_id
    assert escalated.dispatch.dispatch_id != first.dispatch.dispatch_id
    assert centre.log_states(first.dispatch_id) == ["sent", "timed_out"]
    assert any("did not acknowledge" in text and "escalating" in text for text in centre.alert_texts())
    [row] = centre.dispatches(unit="badge-second")
    assert row["attempt"] == 2

    # The first badge is told the dispatch was taken back, so its officer does not set off as well...
    wait_for(lambda: near.inbox.get(first.dispatch_id).state == "cancelled", what="badge-near told")
    assert near.inbox.current() is None
    second.acknowledge()
    # ...and a late answer from a badge that had not heard yet changes nothing.
    late = DispatchState(device="badge-near", dispatch_id=first.dispatch_id, state="acknowledged")
    camera.raw(topics.up(SITE, "badge-near", "dispatch_state"), encode(late))
    wait_for(lambda: centre.dispatches(unit="badge-second", state="acknowledged"), what="second acknowledged")
    assert centre.dispatches(unit="badge-near")[0]["state"] == "timed_out"
    wait_for(lambda: centre.db()["dead_letters"].count >= 1, what="the late answer kept for inspection")


def test_decline_with_reason_goes_to_next_unit(centre, camera, badges):
    near = badges("badge-near", point(100))
    other = badges("badge-other", point(400))
    camera.event(point(0))
    wait_for(inbox_has(near), what="dispatch")
    near.decline("Already detaining a suspect")
    wait_for(inbox_has(other), what="dispatch to the next unit")
    [declined] = centre.dispatches(unit="badge-near")
    assert declined["state"] == "declined" and declined["reason"] == "Already detaining a suspect"


def test_wrong_badge_and_malformed_acknowledgements_are_rejected(centre, camera, badges, mosquitto):
    owner = badges("badge-owner", point(100))
    badges("badge-other", point(2000))
    camera.event(point(0))
    [item] = wait_for(inbox_has(owner), what="dispatch")

    intruder = Camera(mosquitto.url, device="badge-other")
    try:
        # Another badge acknowledges someone else's dispatch on its own topic.
        forged = DispatchState(device="badge-other", dispatch_id=item.dispatch_id, state="acknowledged")
        intruder.raw(topics.up(SITE, "badge-other", "dispatch_state"), encode(forged))
        # ...or claims to be the owner in the payload.
        spoofed = DispatchState(
            device="badge-owner", dispatch_id=item.dispatch_id, state="resolved", note="x"
        )
        intruder.raw(topics.up(SITE, "badge-other", "dispatch_state"), encode(spoofed))
        # Malformed: not JSON, a declined without reason, and an unknown dispatch.
        intruder.raw(topics.up(SITE, "badge-owner", "dispatch_state"), b"{ack")
        bad = encode(DispatchState(device="badge-owner", dispatch_id=item.dispatch_id, state="acknowledged"))
        intruder.raw(
            topics.up(SITE, "badge-owner", "dispatch_state"), bad.replace(b'"acknowledged"', b'"declined"')
        )
        unknown = DispatchState(device="badge-owner", dispatch_id=ids.new_id(), state="acknowledged")
        intruder.raw(topics.up(SITE, "badge-owner", "dispatch_state"), encode(unknown))
    finally:
        intruder.stop()

    def five_reasons():
        reasons = [row["reason"] for row in centre.db()["dead_letters"].rows]
        return reasons if len(reasons) >= 5 else None

    reasons = wait_for(five_reasons, what="five dead letters")
    assert any("sent to badge-owner" in r for r in reasons)
    assert any("does not match" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    assert any("needs a reason" in r for r in reasons)
    assert any("unknown dispatch" in r for r in reasons)
    assert centre.dispatches()[0]["state"] == "sent"

    owner.acknowledge()  # the rightful answer still works
    wait_for(lambda: centre.dispatches(state="acknowledged"), what="acknowledged by the owner")


def test_badge_offline_mid_dispatch_comes_back(tmp_path, centre, camera, badges, mosquitto):
    centre.central.config.routing.ack_timeout_s = 60
    agent = badges("badge-1", point(100))
    camera.event(point(0))
    [item] = wait_for(inbox_has(agent), what="dispatch")
    agent.acknowledge()
    wait_for(lambda: centre.dispatches(state="acknowledged"), what="acknowledged")

    # Out of coverage: the broker goes away for everybody; the officer carries on.
    mosquitto.stop()
    wait_for(lambda: not agent.link.connected.is_set(), what="badge offline")
    agent.en_route()
    agent.on_scene()
    assert agent.outbox.depth() >= 2  # kept durably until the broker acknowledges
    mosquitto.start()
    wait_for(
        lambda: centre.dispatches(state="on_scene"), timeout_s=30, what="answers delivered after the outage"
    )
    wait_for(lambda: agent.outbox.depth() == 0, what="outbox drained")

    # The badge reboots mid-dispatch: the inbox survives, and so does the session with the broker.
    agent.stop()
    wait_for(lambda: not centre.unit("badge-1").online, what="central sees the badge offline")
    wait_for(
        lambda: any("went offline during dispatch" in t for t in centre.alert_texts()), what="operator told"
    )
    again = badges("badge-1", point(100))
    assert again.inbox.current().dispatch_id == item.dispatch_id and again.inbox.current().state == "on_scene"
    again.resolve("Resolved after the reboot")
    wait_for(lambda: centre.dispatches(state="resolved"), what="resolved")
    assert centre.log_states(item.dispatch_id) == ["sent", "acknowledged", "en_route", "on_scene", "resolved"]


@pytest.fixture
def silent_badge(tmp_path, mosquitto, centre):
    """badge-1 as its own ``kuzet badge`` process, on duty 100 m from the camera's events, about to go silent."""
    badge = badge_process(tmp_path, mosquitto.url, "badge-1", point(100))
    try:
        wait_for(lambda: (u := centre.unit("badge-1")) and u.free(), timeout_s=30, what="badge-1 on duty")
        yield badge
    finally:
        badge.kill()


def _out_of_coverage_before_an_event(centre, camera, badge: BadgeProcess) -> tuple[str, dict]:
    """badge-1 goes silent (its agent hangs: no goodbye, its connection left open) just before an event it is
    the nearest unit to. Returns the event and the dispatch sent to badge-1."""
    badge.freeze()
    event_id = camera.event(point(0))
    [dispatch] = wait_for(lambda: centre.dispatches(event_id=event_id), what="the dispatch")
    assert (
        dispatch["unit"] == "badge-1"
    )  # central does not know yet: the broker holds it in badge-1's session
    return event_id, dispatch


def _gone(centre, badge: BadgeProcess, other) -> None:
    """The broker, up all along for everyone else, publishes badge-1's last will once its keep-alive runs out;
    then the hung agent is killed."""
    wait_for(lambda: not centre.unit("badge-1").online, timeout_s=20, what="badge-1's last will at central")
    assert centre.unit("badge-2").online and other.link.connected.is_set()  # only badge-1 dropped
    badge.kill()


def test_a_badge_out_of_coverage_takes_its_dispatch_when_back_within_the_deadline(
    centre, camera, badges, silent_badge
):
    centre.central.config.routing.ack_timeout_s = 60
    other = badges("badge-2", point(600))
    event_id, dispatch = _out_of_coverage_before_an_event(centre, camera, silent_badge)
    _gone(centre, silent_badge, other)
    assert any("badge-1 went offline during dispatch" in text for text in centre.alert_texts())

    # Within the 60 s to acknowledge nobody else is sent; the badge starts again and gets the dispatch from
    # its MQTT session, and the officer answers as usual.
    back = badges("badge-1", point(100))
    [item] = wait_for(
        inbox_has(back, dispatch["dispatch_id"]), what="the dispatch delivered from the session"
    )
    assert item.state == "new" and item.dispatch.event_id == event_id
    back.acknowledge()
    back.on_scene()
    back.resolve("Nobody there any more")
    wait_for(lambda: centre.dispatches(state="resolved"), what="resolved at central")

    # Back online before acknowledging, the badge was sent the dispatch again (a session elsewhere might not
    # have held it); with both copies it keeps one.
    assert [row["dispatch_id"] for row in centre.dispatches(event_id=event_id)] == [dispatch["dispatch_id"]]
    assert centre.log_states(dispatch["dispatch_id"]) == [
        "sent",
        "sent",
        "acknowledged",
        "on_scene",
        "resolved",
    ]
    assert [i.dispatch_id for i in back.inbox.items()] == [dispatch["dispatch_id"]]
    assert other.inbox.items() == []
    assert centre.db()["events"].get(event_id)["status"] == "closed"
    wait_for(lambda: centre.unit("badge-1").free(), what="badge-1 free again")
    assert centre.db()["dead_letters"].count == 0


def test_a_badge_out_of_coverage_past_the_deadline_is_escalated_from_and_told_when_back(
    centre, camera, badges, silent_badge
):
    other = badges("badge-2", point(600))  # the fixture's policy: 2 s to acknowledge, then the next unit
    event_id, first = _out_of_coverage_before_an_event(centre, camera, silent_badge)
    [escalated] = wait_for(inbox_has(other), what="the event escalated to badge-2")
    other.acknowledge()
    wait_for(lambda: centre.dispatches(unit="badge-2", state="acknowledged"), what="badge-2 acknowledged")
    assert escalated.dispatch.event_id == event_id
    assert centre.log_states(first["dispatch_id"]) == ["sent", "timed_out"]
    assert any(
        "badge-1 (online) did not acknowledge" in t and "escalating" in t for t in centre.alert_texts()
    )
    _gone(centre, silent_badge, other)

    # badge-1 starts again: its session holds the dispatch it never saw, and the word that it was taken
    # back, so the officer is not sent after an event someone else has.
    back = badges("badge-1", point(100))
    taken_back = wait_for(
        lambda: (i := back.inbox.get(first["dispatch_id"])) and i.state == "cancelled" and i,
        what="the dispatch and its withdrawal at badge-1",
    )
    assert "not acknowledged within 2 s" in taken_back.reason and back.inbox.current() is None
    with pytest.raises(InboxError):
        back.acknowledge(first["dispatch_id"])
    wait_for(
        lambda: centre.db()["commands"].count_where("device = 'badge-1' and state = 'ok'"),
        what="badge-1's answer to the withdrawal",
    )
    assert centre.dispatches(unit="badge-1")[0]["state"] == "timed_out"
    assert centre.dispatches(unit="badge-2")[0]["state"] == "acknowledged"
    assert centre.db()["events"].get(event_id)["dispatched_unit"] == "badge-2"
    wait_for(lambda: centre.unit("badge-1").free(), what="badge-1 free for the next event")
    assert centre.db()["dead_letters"].count == 0


def test_event_waits_for_a_unit_that_comes_back(tmp_path, centre, camera, badges):
    agent = badges("badge-1", point(100))
    # The badge loses its link without saying goodbye: the broker publishes its last will.
    agent.link.client.socket().shutdown(2)
    wait_for(lambda: not centre.unit("badge-1").online, what="central sees the badge offline")
    camera.event(point(0))
    wait_for(lambda: centre.routing.waiting(), what="the event waiting for a unit")
    assert centre.dispatches() == []
    assert any("no free unit" in text for text in centre.alert_texts())

    # Paho reconnects by itself; the badge says it is back and the waiting event goes to it.
    [item] = wait_for(inbox_has(agent), timeout_s=20, what="dispatch once the badge is back")
    assert centre.routing.waiting() == []
    agent.acknowledge()
    wait_for(lambda: centre.dispatches(state="acknowledged"), what="acknowledged")


def test_intercept_sends_every_free_unit_in_radius_with_snapshot_and_direction(
    tmp_path, mosquitto, camera, shared_dir
):
    centre = Centre(
        tmp_path, mosquitto.url, rules={"running": {"mode": "intercept"}}, intercept_radius_m=1000
    )
    agents = [
        start_badge(tmp_path, mosquitto.url, name, at, centre)
        for name, at in (("badge-a", point(300)), ("badge-b", point(0, 700)), ("badge-far", point(3000)))
    ]
    try:
        event_id = ids.new_id()
        jpeg = (shared_dir / "data" / "street" / "bus.jpg").read_bytes()
        snapshot = Snapshot(
            device="cam-1",
            event_id=event_id,
            sha256=hashlib.sha256(jpeg).hexdigest(),
            width=810,
            height=1080,
            data=to_base64(jpeg),
        )
        camera.raw(topics.up(SITE, "cam-1", "snapshot"), encode(snapshot))
        wait_for(lambda: centre.db()["media"].count, what="snapshot stored")
        camera.event(point(0), event_type="running", event_id=event_id, attributes={"direction_deg": 90.0})

        near = [wait_for(inbox_has(agent), what=f"intercept at {agent.device}")[0] for agent in agents[:2]]
        for item in near:
            assert item.dispatch.mode == "intercept" and item.dispatch.direction_deg == 90.0
            assert from_base64(item.dispatch.snapshot) == jpeg
        saved = tmp_path / "badge-a" / "snapshots" / f"{near[0].dispatch_id}.jpg"
        # the badge writes the file after the dispatch is in its inbox: wait for it, as an officer would
        wait_for(lambda: saved.is_file() and saved.read_bytes() == jpeg, what="the badge's saved snapshot")
        assert agents[2].inbox.items() == []
        assert {r["unit"] for r in centre.dispatches(mode="intercept")} == {"badge-a", "badge-b"}
    finally:
        for agent in agents:
            agent.stop()
        centre.stop()


def test_event_waiting_for_a_unit_survives_a_restart_of_central(tmp_path, mosquitto, camera):
    first = Centre(tmp_path, mosquitto.url)
    event_id = camera.event(point(0))
    wait_for(lambda: first.routing.waiting() == [event_id], what="the event waiting")
    first.stop()

    again = Centre(tmp_path, mosquitto.url)  # same database
    agent = None
    try:
        assert again.routing.waiting() == [event_id]
        agent = start_badge(tmp_path, mosquitto.url, "badge-1", point(100), again)
        [item] = wait_for(inbox_has(agent), what="the waiting event dispatched after the restart")
        assert item.dispatch.event_id == event_id
    finally:
        if agent is not None:
            agent.stop()
        again.stop()
