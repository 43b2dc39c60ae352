"""The badge's dispatch inbox: forward-only steps, the checks an officer meets, and a reboot."""

from __future__ import annotations

import pytest

from kuzet.edge.badge.inbox import Inbox, InboxError
from kuzet.shared import ids
from kuzet.shared.messages import Dispatch


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
