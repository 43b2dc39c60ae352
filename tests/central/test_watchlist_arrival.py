"""A possible match is audited the moment it reaches central, before anyone has looked at it (through the one
door, central.operations, hooked on ingest); a confirmed wanted person's intercept carries the direction of
travel the camera measured, or says it is unknown; and routing refuses to be configured to dispatch on matches
by itself: a match is a suggestion a person confirms."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from support.patrol import Centre, inbox_has, point, wait_for

from kuzet.central.routing.config import RoutingSection
from kuzet.central.watchlist import entries, matches
from kuzet.central.watchlist.dispatching import dispatch_confirmed
from kuzet.shared import ids, timeutil
from kuzet.shared.config import ConfigError, parse

ENTRY = ids.new_id()


@pytest.fixture
def centre(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url)
    yield centre
    centre.stop()


def audited(centre, action: str) -> list[dict]:
    rows = (
        centre.db().execute("SELECT actor, target, detail FROM audit WHERE action = ?", [action]).fetchall()
    )
    return [{"actor": a, "target": t, **json.loads(d)} for a, t, d in rows]


def match_event(camera, entry_id: str, **attributes) -> str:
    return camera.event(
        point(0),
        "watchlist_match",
        track_ids=[7],
        box={"x": 10.0, "y": 10.0, "w": 60.0, "h": 60.0},
        attributes={"entry_id": entry_id, "distance": 0.41, "threshold": 0.58, "face_sha256": "a" * 64}
        | attributes,
    )


def stored(centre, event_id: str) -> bool:
    return centre.db().execute("SELECT 1 FROM events WHERE event_id = ?", [event_id]).fetchone() is not None


def test_an_arriving_match_is_audited_and_sends_nobody(centre, camera):
    event_id = match_event(camera, ENTRY)
    other = camera.event(point(0), "loitering")

    [entry] = wait_for(lambda: audited(centre, "watchlist.match_received"), what="the match audited")
    assert entry["actor"] == "cam-1" and entry["target"] == f"event:{event_id}"
    assert (entry["entry_id"], entry["distance"], entry["threshold"]) == (ENTRY, 0.41, 0.58)
    wait_for(lambda: centre.event_audit(other) or stored(centre, other), what="the ordinary event stored")
    assert centre.dispatches(event_id=event_id) == []
    assert len(audited(centre, "watchlist.match_received")) == 1  # the loitering event is not a match


def test_routing_refuses_to_dispatch_matches_automatically():
    with pytest.raises(ConfigError, match="watchlist_match cannot be in"):
        parse({"event_types": ["loitering", "watchlist_match"]}, RoutingSection)
    assert "watchlist_match" not in parse({}, RoutingSection).event_types


def wanted(db) -> str:
    form = {
        "category": "wanted",
        "name": "Test Person",
        "case_number": "KZ-9",
        "authority": "Pavlodar police",
        "reason": "test",
        "expires_on": (timeutil.utc_now() + timedelta(days=3)).strftime("%Y-%m-%d"),
    }
    return entries.create(db, "supervisor", entries.parse_input(form, ZoneInfo("Asia/Almaty")))


@pytest.mark.parametrize(
    "measured, said, sent_deg",
    [({"direction_deg": 47.0}, "north-east (47°)", 47.0), ({}, "Direction of travel: unknown", None)],
)
def test_a_wanted_persons_intercept_carries_the_direction_of_travel(
    centre, camera, badges, measured, said, sent_deg
):
    db = centre.db()
    near = badges("badge-near", point(150))
    event_id = match_event(camera, wanted(db), **measured)
    wait_for(lambda: stored(centre, event_id), what="the match stored")

    decided = matches.decide(db, "supervisor", event_id, "confirmed", "it is him")
    outcome = dispatch_confirmed(centre.operations, decided, "supervisor")
    assert "1 patrol sent to intercept" in outcome and said in outcome, outcome
    [item] = wait_for(inbox_has(near), what="the intercept at the badge")
    assert item.dispatch.direction_deg == sent_deg and said in item.dispatch.description
