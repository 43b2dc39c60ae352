"""The triage board's cache of open incidents (central.web.board): after every kind of change that reaches the
live hub (ingest's stored rows, the one door's acknowledgements and closes, a device renamed, a change made by
another central process and relayed) it lists exactly what folding the store afresh lists, re-folding only
the changed groups; what changes behind the hub's back is caught by the periodic full re-fold; each push
carries only the groups that changed, with a version that orders it against a read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.web import insert_event, make_central

from kuzet.central.operations import Operations
from kuzet.central.store import incidents, queries, registry
from kuzet.central.web import board as board_module
from kuzet.central.web.board import IncidentBoard
from kuzet.shared import timeutil

BASE = timeutil.from_wire("2026-12-05T06:00:00.000Z")


def at(minutes: float) -> str:
    return timeutil.to_wire(BASE + timedelta(minutes=minutes))


@pytest.fixture
def central(tmp_path):
    central = make_central(tmp_path, triage={"window_s": 600})
    yield central
    central.close()


@pytest.fixture
def board(central):
    board = IncidentBoard(central)
    yield board
    central.hub.unlisten(board._changed)


def stored(central, minutes: float, announce: bool = True, **fields) -> dict:
    """An event as ingest stores it, announced on the hub as ingest announces it (the stored row)."""
    fields = {
        "device": "cam-01",
        "zone": "platform",
        "event_type": "loitering",
        "severity": "medium",
        **fields,
    }
    fields["severity_rank"] = {"critical": 5, "high": 4, "medium": 3, "low": 2}[fields["severity"]]
    row = insert_event(central, started_at=at(minutes), received_at=at(minutes), **fields)
    if announce:
        central.hub.publish("event", queries.get_event(central.db(), row["event_id"]))
    return row


def fresh(central) -> list[dict]:
    return [incident.as_json() for incident in incidents.open_incidents(central.db(), 600)]


def listed(board, **filters) -> list[dict]:
    return board.listing(filters)[0]


def test_every_change_through_the_hub_keeps_the_board_equal_to_a_fresh_fold(central, board, monkeypatch):
    door = Operations(central)
    first = stored(central, 0)
    stored(central, 5, zone="gate")
    assert listed(board) == fresh(central) and len(listed(board)) == 2
    folds = []
    real_fold = board._fold
    monkeypatch.setattr(board, "_fold", lambda db, filters: folds.append(filters) or real_fold(db, filters))

    refire = stored(central, 4, severity="critical")  # folds into the first incident, which now leads
    assert listed(board) == fresh(central)
    assert listed(board)[0]["event_ids"] == [first["event_id"], refire["event_id"]]
    assert folds == [{"device": "cam-01", "zone": "platform", "type": "loitering"}]  # that group alone

    door.acknowledge_event(first["event_id"], "operator")  # the door publishes the id alone
    door.close_event(refire["event_id"], "operator", "checked")
    assert listed(board) == fresh(central)
    assert [i["zone"] for i in listed(board)] == ["gate", "platform"]  # the answered one after

    registry.register(  # a camera's street name is on its incidents
        central.db(),
        registry.Registration(device_id="cam-01", kind="camera", name="ул. Ленина", site="pavlodar"),
        actor="test",
    )
    central.hub.publish("device", queries.get_device(central.db(), "cam-01"))
    assert {i["camera_name"] for i in listed(board)} == {"ул. Ленина"}
    assert listed(board) == fresh(central)

    central.hub.deliver("event", {"event_id": first["event_id"]})  # relayed from another central process
    door.close_event(first["event_id"], "operator", "checked")
    assert listed(board) == fresh(central) and [i["zone"] for i in listed(board)] == ["gate"]
    assert not any(filters == {} for filters in folds)  # never the whole store again


def test_filters_and_order_match_the_store(central, board):
    stored(central, 10, device="cam-02")
    stored(central, 0, device="cam-03")
    stored(central, 20, device="cam-04", severity="critical")
    stored(central, -10, device="cam-05", status="acknowledged")
    stored(central, 1, device="cam-03", event_type="crowd", zone=None)
    assert [i["device"] for i in listed(board)] == ["cam-04", "cam-03", "cam-03", "cam-02", "cam-05"]
    assert listed(board) == fresh(central)
    for filters in (
        {"device": "cam-03"},
        {"type": "crowd"},
        {"zone": "platform"},
        {"status": "acknowledged"},
    ):
        expected = incidents.open_incidents(central.db(), 600, filters=filters)
        assert listed(board, **filters) == [i.as_json() for i in expected], filters


def test_a_change_behind_the_hubs_back_is_caught_by_the_periodic_full_fold(central, board, monkeypatch):
    stored(central, 0)
    assert len(listed(board)) == 1
    quiet = stored(central, 30, announce=False, device="cam-09")  # e.g. a script writing the store
    assert len(listed(board)) == 1  # not told: not seen yet
    monkeypatch.setattr(board_module, "RESYNC_S", 0.0)
    assert listed(board) == fresh(central)
    assert quiet["event_id"] in {i["incident_id"] for i in listed(board)}


def test_a_push_carries_the_changed_groups_whole_with_a_version_after_the_read(central, board):
    assert board.push_once() is None  # nothing read yet: nothing to keep current
    stored(central, 0)
    stored(central, 2, device="cam-02")
    _, read_at = board.listing({})
    assert board.push_once() is None  # the read has everything: nothing changed since
    refire = stored(central, 3)
    update = board.push_once()
    assert update["version"] > read_at and update["total"] == 2
    [group] = update["groups"]
    assert (group["device"], group["zone"], group["event_type"]) == ("cam-01", "platform", "loitering")
    assert group["incidents"][0]["event_ids"][-1] == refire["event_id"]
    Operations(central).close_event(refire["event_id"], "operator", "done")
    Operations(central).close_event(group["incidents"][0]["incident_id"], "operator", "done")
    closed = board.push_once()
    assert closed["groups"][0]["incidents"] == [] and closed["total"] == 1  # the group is gone: said so
    assert closed["version"] > update["version"]


def test_pushes_reach_the_open_streams_on_the_incidents_channel(central, board):
    stored(central, 0)
    board.listing({})
    with central.hub.subscribe() as subscription:
        stored(central, 1)
        board.push_once()
        channels = []
        while (update := subscription.get(0)) is not None:
            channels.append(update.channel)
    assert channels == ["event", "incidents"]


def test_the_encoded_listing_is_shared_by_readers_until_the_board_changes(central, board):
    """Pages opening together read the same list: it is encoded once per version and filter, and a change
    gives every reader the new list, never the kept one."""
    import json

    stored(central, 0)
    stored(central, 2, device="cam-02")
    first = board.listing_json({}, limit=300)
    assert board.listing_json({}, limit=300) is first  # encoded once
    read = json.loads(first)
    assert read["incidents"] == listed(board) and read["total"] == 2 and read["window_s"] == 600
    assert json.loads(board.listing_json({"device": "cam-02"}, limit=300))["total"] == 1
    assert json.loads(board.listing_json({}, limit=1))["incidents"] == listed(board)[:1]

    stored(central, 3, device="cam-03", severity="critical")
    after = json.loads(board.listing_json({}, limit=300))
    assert after["version"] > read["version"] and after["total"] == 3
    assert after["incidents"][0]["device"] == "cam-03" and after["incidents"] == fresh(central)
    assert json.loads(board.listing_json({"device": "cam-02"}, limit=300))["version"] == after["version"]


def test_the_filter_menus_are_read_again_only_when_they_are_old(central, monkeypatch):
    """The board's and the queue's menus are kept for ``max_age_s`` (each read scans the events), then read
    again: a new camera or type appears in them once the kept ones are old."""
    from kuzet.central.web.services import FilterMenus

    stored(central, 0)
    menus = FilterMenus(max_age_s=30)
    assert menus.get(central.db()) == {"device": ["cam-01"], "zone": ["platform"], "type": ["loitering"]}
    stored(central, 1, device="cam-07", event_type="crowd")
    assert menus.get(central.db())["device"] == ["cam-01"]  # kept
    clock = board_module.time.monotonic() + 31
    monkeypatch.setattr("kuzet.central.web.services.time.monotonic", lambda: clock)
    assert menus.get(central.db())["device"] == ["cam-01", "cam-07"]
    assert menus.get(central.db())["type"] == ["crowd", "loitering"]
