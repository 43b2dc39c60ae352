"""A dispatch the badge may never have got is sent again when the badge says it is back online
(``lifecycle.SEND_AGAIN``): a badge that moved to the standby broker while its dispatch sat in its session on
the primary, which then went down, finds nothing in a session on the standby. Real brokers, central, a badge
process and a badge agent."""

from __future__ import annotations

import html
import json
import re

import pytest
from support.patrol import Camera, Centre, badge_process, inbox_has, point, start_badge, wait_for
from support.web import PASSWORD, login

from kuzet.central.auth import preferences, users
from kuzet.central.web import create_app


@pytest.fixture
def centre(tmp_path, brokers):
    centre = Centre(tmp_path, [broker.url for broker in brokers], ack_timeout_s=60)
    yield centre
    centre.stop()


def test_a_badge_back_on_the_standby_broker_gets_the_dispatch_it_never_saw(tmp_path, brokers, centre):
    primary, standby = brokers
    silent = badge_process(tmp_path, primary.url, "badge-1", point(100))
    camera = Camera(primary.url)
    try:
        wait_for(lambda: (u := centre.unit("badge-1")) and u.free(), timeout_s=30, what="badge-1 on duty")
        silent.freeze()  # out of coverage: central does not know yet, and sends it the next event
        event_id = camera.event(point(0))
        [sent] = wait_for(lambda: centre.dispatches(event_id=event_id), what="the dispatch to badge-1")
        assert sent["unit"] == "badge-1"
        silent.kill()
        primary.stop()  # the dispatch goes down with badge-1's session on the primary

        back = start_badge(tmp_path, standby.url, "badge-1", point(100))  # same storage, the standby broker
        try:
            [item] = wait_for(
                inbox_has(back, sent["dispatch_id"]), timeout_s=20, what="the dispatch sent again"
            )
            assert item.state == "new" and item.dispatch.event_id == event_id
            assert 1 <= item.dispatch.ack_deadline_s < 60  # the same deadline: what is left of it
            back.acknowledge()
            wait_for(lambda: centre.dispatches(state="acknowledged"), what="acknowledged at central")
        finally:
            back.stop()
    finally:
        camera.stop()
        silent.kill()

    assert [row["dispatch_id"] for row in centre.dispatches(event_id=event_id)] == [sent["dispatch_id"]]
    assert centre.log_states(sent["dispatch_id"]) == ["sent", "sent", "acknowledged"]
    again = centre.db()["dispatch_log"].rows_where("dispatch_id = ?", [sent["dispatch_id"]], order_by="id")
    assert "sent again: the badge is back online" in list(again)[1]["detail"]
    assert centre.db()["dead_letters"].count == 0

    # The operator reads it in the event's dispatch history, in their language, as the page first opens.
    users.create_user(centre.db(), "operator", PASSWORD, "operator", "Operator", actor="test")
    preferences.update(centre.db(), "operator", language="ru")
    client = create_app(centre.central).test_client()
    login(client, "operator")
    page = client.get(f"/events/{event_id}").get_data(as_text=True)
    shown = re.search(r'id="dispatch-data">(.*?)</script>', page, re.S).group(1)
    [history] = json.loads(html.unescape(shown))
    notes = [entry["note"] for entry in history["log"]]
    assert notes[1].startswith(
        "отправлено повторно: нагрудное устройство снова в сети, на подтверждение осталось"
    )


def test_an_acknowledged_dispatch_is_not_sent_again(tmp_path, brokers, centre):
    primary, _ = brokers
    camera = Camera(primary.url)
    badge = start_badge(tmp_path, primary.url, "badge-1", point(100), centre)
    try:
        event_id = camera.event(point(0))
        [item] = wait_for(inbox_has(badge), what="the dispatch")
        badge.acknowledge()
        wait_for(lambda: centre.dispatches(state="acknowledged"), what="acknowledged at central")
        badge.stop()
        wait_for(lambda: not centre.unit("badge-1").online, what="badge-1 offline")
        badge = start_badge(tmp_path, primary.url, "badge-1", point(100))
        wait_for(lambda: centre.unit("badge-1").online, what="badge-1 back online")
        assert badge.inbox.get(item.dispatch_id).state == "acknowledged"
    finally:
        badge.stop()
        camera.stop()
    centre.routing.drain()
    assert centre.log_states(item.dispatch_id) == ["sent", "acknowledged"]
    assert [row["event_id"] for row in centre.dispatches()] == [event_id]
