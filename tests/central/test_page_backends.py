"""The page on either store (``[store] url``: the embedded SQLite file, then the throw-away PostgreSQL cluster),
through Flask's test client: the incidents board, an event's page, units, statistics and response times, the
shift page, a device's page, the map's data, the watchlist and its matches, the audit and health pages show
the same rows, and what an operator does there is stored and audited alike."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from support.web import csrf_token, insert_row, login, make_central, store_event

from kuzet.central.store import portable, registry
from kuzet.central.watchlist import entries
from kuzet.central.web import create_app
from kuzet.shared import ids, timeutil


@pytest.fixture(params=["sqlite", "postgresql"])
def central(request, tmp_path):
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = make_central(tmp_path, store={"url": url})
    assert made.store.backend == request.param
    yield made
    made.close()


@pytest.fixture
def seeded(central):
    """A registered camera with two re-fires of one incident, a dispatch to a badge, a watchlist entry and a
    possible match of it."""
    db = central.db()
    registry.register(
        db,
        registry.Registration(
            device_id="cam-01", kind="camera", name="ул. Торайгырова / Ленина", site="pavlodar"
        ),
        actor="test",
    )
    now = timeutil.utc_now()
    first = store_event(db, started_at=timeutil.to_wire(now - timedelta(minutes=3)), snapshot_sha256=None)
    second = store_event(db, started_at=timeutil.to_wire(now - timedelta(minutes=1)))
    dispatch_id = ids.new_id()
    insert_row(
        db,
        "dispatches",
        {
            "dispatch_id": dispatch_id,
            "event_id": first["event_id"],
            "unit": "badge-7",
            "mode": "nearest",
            "state": "sent",
            "created_at": timeutil.now_wire(),
            "lat": 52.2875,
            "lon": 76.968,
        },
    )
    insert_row(db, "dispatch_log", {"dispatch_id": dispatch_id, "state": "sent", "at": timeutil.now_wire()})
    entry = entries.EntryInput(
        "missing",
        "Асель Нурланова",
        "KZ-2026-0042",
        "Павлодарская полиция",
        "пропала",
        timeutil.to_wire(now + timedelta(days=3)),
    )
    entry_id = entries.create(db, "supervisor", entry)
    match = store_event(
        db,
        event_type="watchlist_match",
        label="face",
        attributes=json.dumps({"entry_id": entry_id, "distance": 0.3, "threshold": 0.5}),
    )
    return {
        "first": first,
        "second": second,
        "dispatch_id": dispatch_id,
        "entry_id": entry_id,
        "match": match,
    }


def _client(central, role: str):
    client = create_app(central).test_client()
    login(client, role)
    return client


def _ok(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (
        f"{path}: {response.status_code} {response.get_data(as_text=True)[:500]}"
    )
    return response.get_data(as_text=True)


def test_the_main_pages_show_the_stored_rows_on_either_store(central, seeded):
    client = _client(central, "supervisor")
    first, second = seeded["first"]["event_id"], seeded["second"]["event_id"]

    [incident] = client.get("/api/v1/incidents?type=loitering").get_json()["incidents"]
    assert incident["count"] == 2 and incident["event_ids"] == [first, second]
    assert incident["camera_name"] == "ул. Торайгырова / Ленина"
    assert "cam-01" in _ok(client, "/incidents")  # the filter menus: distinct cameras
    assert "badge-7" in _ok(client, f"/events/{first}")  # its dispatch history
    shown = client.get(f"/api/v1/events/{first}").get_json()
    assert [d["dispatch_id"] for d in shown["dispatches"]] == [seeded["dispatch_id"]]
    viewers = portable.rows(
        central.db(), "SELECT actor, action FROM audit WHERE target = ?", [f"event:{first}"]
    )
    assert {"actor": "supervisor", "action": "event.view"} in viewers

    _ok(client, "/units")
    _ok(client, "/stats")
    assert client.get("/api/v1/stats?by=camera").get_json()["total"] == 3
    assert "\r\nbadge-7,1," in _ok(client, "/stats/response-times.csv?by=unit")  # one dispatch sent
    _ok(client, "/shift")
    _ok(client, "/devices/cam-01")
    mapped = client.get("/api/v1/map").get_json()
    assert [d["dispatch_id"] for d in mapped["dispatches"]] == [seeded["dispatch_id"]]
    assert {e["event_id"] for e in mapped["events"]} >= {first, second}

    assert "Асель Нурланова" in _ok(client, "/watchlist/")
    assert "Асель Нурланова" in _ok(client, "/watchlist/matches/")
    assert "KZ-2026-0042" in _ok(client, f"/watchlist/matches/{seeded['match']['event_id']}")
    assert client.get("/api/v1/audit/verify").get_json() == {"ok": True, "first_bad_seq": None}

    health = client.get("/healthz").get_json()
    assert health["database"] == "ok"  # unhealthy all the same: no ingest runs in this process
    assert 'kuzet_dispatches{state="sent"} 1.0' in _ok(client, "/metrics")


def test_an_operators_work_on_the_page_is_stored_and_audited_on_either_store(central, seeded):
    client = _client(central, "operator")
    page = _ok(client, "/incidents")
    headers = {"X-CSRFToken": csrf_token(page)}
    ids_ = seeded["first"]["event_id"], seeded["second"]["event_id"]
    answer = client.post("/api/v1/incidents/ack", json={"event_ids": list(ids_)}, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["done"] == list(ids_)
    assert client.post("/preferences", json={"sound": False}, headers=headers).get_json()["sound"] is False
    added = client.post(
        "/shift/log",
        data={
            "kind": "handover",
            "text": "Камера 7 не в сети",
            "csrf_token": csrf_token(_ok(client, "/shift")),
        },
        follow_redirects=True,
    )
    assert "Камера 7 не в сети" in added.get_data(as_text=True)

    db = central.db()
    statuses = {
        row["status"] for row in portable.rows(db, "SELECT status FROM events WHERE event_type = 'loitering'")
    }
    assert statuses == {"acknowledged"}
    [prefs] = portable.rows(db, "SELECT sound FROM user_preferences WHERE username = 'operator'")
    assert prefs["sound"] == 0
    actions = [
        row["action"] for row in portable.rows(db, "SELECT action FROM audit WHERE actor = 'operator'")
    ]
    assert actions.count("event.acknowledge") == 2 and "shift.handover" in actions
