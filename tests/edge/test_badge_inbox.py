"""The badge's dispatch inbox: forward-only steps, the checks an officer meets, a reboot, and a dispatch that
comes twice through the broker."""

from __future__ import annotations

import pytest
from support.patrol import SITE, inbox_has, point, start_badge, wait_for

from kuzet.edge.badge.inbox import Inbox, InboxError
from kuzet.shared import ids, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Dispatch, DispatchState, decode, encode
from kuzet.shared.mqtt import Link


def dispatch(**fields) -> Dispatch:
    values = dict(
        device="badge-1",
        dispatch_id=ids.new_id(),
        mode="nearest",
        event_type="loitering",
        severity="high",
        place={"lat": 52.28, "lon": 76.96},
    )
    return Dispatch(**{**values, **fields})


def test_steps_only_move_forward_and_need_what_they_need(tmp_path):
    inbox = Inbox(tmp_path / "inbox.db")
    task = dispatch()
    assert inbox.receive(task) and not inbox.receive(task)  # a QoS 1 repeat is not a second task
    assert inbox.current().state == "new"
    inbox.advance(task.dispatch_id, "en_route")  # acknowledging may be skipped
    with pytest.raises(InboxError, match="cannot go from en_route to acknowledged"):
        inbox.advance(task.dispatch_id, "acknowledged")
    with pytest.raises(InboxError, match="say why"):
        inbox.advance(task.dispatch_id, "declined")
    inbox.advance(task.dispatch_id, "on_scene")
    with pytest.raises(InboxError, match="on scene"):
        inbox.advance(task.dispatch_id, "declined", reason="tired")
    with pytest.raises(InboxError, match="protocol note"):
        inbox.advance(task.dispatch_id, "resolved")
    done = inbox.advance(task.dispatch_id, "resolved", note="Handed over to the ambulance")
    assert done.state == "resolved" and not done.open and inbox.current() is None
    with pytest.raises(InboxError, match="already resolved"):
        inbox.advance(task.dispatch_id, "cancelled", reason="late")
    with pytest.raises(InboxError, match="no dispatch"):
        inbox.advance(ids.new_id(), "acknowledged")


def test_current_is_the_oldest_open_one_and_survives_a_reboot(tmp_path):
    inbox = Inbox(tmp_path / "inbox.db")
    first, second = dispatch(), dispatch(severity="critical")
    inbox.receive(first)
    inbox.receive(second)
    inbox.advance(first.dispatch_id, "declined", reason="Detaining a suspect")
    assert inbox.current().dispatch_id == second.dispatch_id
    inbox.close()
    again = Inbox(tmp_path / "inbox.db")
    restored = again.current().dispatch
    assert (restored.dispatch_id, restored.severity, restored.place) == (
        second.dispatch_id,
        "critical",
        second.place,
    )
    assert [i.state for i in again.items()] == ["new", "declined"]  # open ones first
    assert again.get(first.dispatch_id).reason == "Detaining a suspect"


def test_a_dispatch_that_comes_twice_shows_once_and_is_answered_once(tmp_path, mosquitto):
    """Routing may send a dispatch on each broker the badge could be on: the same dispatch twice through
    Mosquitto is one task and one notice; the officer's acknowledgement goes once, and a copy arriving after it
    (or after a restart) neither shows again nor sets it back to new."""
    device = "badge-5"
    answers: list[DispatchState] = []
    central = Link(MqttSection(url=mosquitto.url), "central-test")
    central.subscribe(topics.up(SITE, device, "dispatch_state"), lambda t, p: answers.append(decode(t, p)))
    central.start()

    def send(*dispatches: Dispatch) -> None:
        """Publish them, then a marker dispatch, and wait for the marker: what came before it was taken."""
        marker = dispatch(device=device)
        for message in (*dispatches, marker):
            central.publish(topics.down(SITE, device, "dispatch"), encode(message)).wait_for_publish(5)
        wait_for(inbox_has(agent, marker.dispatch_id), what="the marker dispatch")

    def shown(agent) -> int:
        return sum("NEW DISPATCH" in notice for notice in agent.notices)

    task = dispatch(device=device)
    agent = start_badge(tmp_path, mosquitto.url, device, point(0))
    try:
        send(task, task)
        assert len(agent.inbox.items()) == 2 and shown(agent) == 2  # the task and the marker, once each
        agent.acknowledge(task.dispatch_id)
        wait_for(lambda: answers, what="the acknowledgement")
        send(task)
        assert agent.inbox.get(task.dispatch_id).state == "acknowledged" and shown(agent) == 3
    finally:
        agent.stop()
    agent = start_badge(tmp_path, mosquitto.url, device, point(0))  # restarted, same storage
    try:
        send(task)
        assert agent.inbox.get(task.dispatch_id).state == "acknowledged" and shown(agent) == 1
        assert [(a.dispatch_id, a.state) for a in answers] == [(task.dispatch_id, "acknowledged")]
    finally:
        agent.stop()
        central.stop()
