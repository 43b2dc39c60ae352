"""Possible matches at central: shown side by side only to those with watchlist.review, a possible match until a
person confirms or rejects it with a note, nothing dispatched before, rejections counted per camera and entry,
every view and decision audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from support.web import csrf_token, insert_event, insert_media, jpeg, login

from kuzet.central.auth import audit
from kuzet.central.web import create_app
from kuzet.shared import timeutil

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")


@pytest.fixture
def central_options():
    return {"accounts": True}


@pytest.fixture
def app(central):
    return create_app(central)  # no routing running: a confirmation says a patrol must be sent by hand


def logged_in(app, role):
    client = app.test_client()
    login(client, role)
    return client


def enrolled(client, footage, category="missing") -> str:
    headers = {"X-CSRFToken": csrf_token(client.get("/watchlist/").get_data(as_text=True))}
    body = {
        "category": category,
        "name": "Ерлан Жумабаев",
        "case_number": "KZ-77",
        "authority": "Pavlodar police",
        "reason": "test",
        "expires_on": (timeutil.utc_now() + timedelta(days=5)).strftime("%Y-%m-%d"),
    }
    entry_id = client.post("/api/v1/watchlist", json=body, headers=headers).get_json()["id"]
    photo = client.post(
        f"/api/v1/watchlist/{entry_id}/photos",
        data=(footage / "faces" / "pairs" / "img1.jpg").read_bytes(),
        content_type="image/jpeg",
        headers=headers,
    )
    assert photo.status_code == 201
    return entry_id


def a_match(central, entry_id: str, device: str = "cam-01") -> str:
    event = insert_event(
        central, event_type="watchlist_match", device=device, label="face", edge_state="closed"
    )
    face = insert_media(central, jpeg(60, 60), "snapshot", "image/jpeg", event["event_id"])
    scene = insert_media(central, jpeg(320, 240), "snapshot", "image/jpeg", event["event_id"])
    attributes = {"entry_id": entry_id, "distance": 0.41, "threshold": 0.58, "face_sha256": face}
    central.db().execute(
        "UPDATE events SET attributes = ?, snapshot_sha256 = ? WHERE event_id = ?",
        [json.dumps(attributes), scene, event["event_id"]],
    )
    central.db().conn.commit()
    return event["event_id"]


def test_operators_without_the_permission_see_no_match(app, central, footage):
    supervisor = logged_in(app, "supervisor")
    event_id = a_match(central, enrolled(supervisor, footage))
    operator = logged_in(app, "operator")
    assert operator.get("/watchlist/matches/").status_code == 403
    assert operator.get(f"/watchlist/matches/{event_id}").status_code == 403
    assert operator.get(f"/watchlist/matches/{event_id}/enrolled").status_code == 403


def test_a_match_side_by_side_then_rejected_with_a_note(app, central, footage):
    supervisor = logged_in(app, "supervisor")
    entry_id = enrolled(supervisor, footage)
    event_id = a_match(central, entry_id, device="cam-07")

    page = supervisor.get(f"/watchlist/matches/{event_id}").get_data(as_text=True)
    assert "possible match" in page and "0.410" in page and "cam-07" in page
    assert "This is only a possible match." in page  # the duty notice, in the reader's language
    for image_id in ("enrolled", "captured", "scene"):
        src = page.split(f'id="{image_id}" src="')[1].split('"')[0].replace("&amp;", "&")
        served = supervisor.get(src)
        assert served.status_code == 200 and served.data[:2] == b"\xff\xd8", image_id

    token = csrf_token(page)
    refused = supervisor.post(
        f"/watchlist/matches/{event_id}", data={"decision": "rejected", "note": " ", "csrf_token": token}
    )
    assert "Write a note" in supervisor.get(refused.headers["Location"]).get_data(as_text=True)
    supervisor.post(
        f"/watchlist/matches/{event_id}",
        data={"decision": "rejected", "note": "different person: older, beard", "csrf_token": token},
    )
    page = supervisor.get(f"/watchlist/matches/{event_id}").get_data(as_text=True)
    assert 'id="match-state">rejected' in page and "different person" in page
    again = supervisor.post(
        f"/watchlist/matches/{event_id}", data={"decision": "confirmed", "note": "x", "csrf_token": token}
    )
    assert "already rejected" in supervisor.get(again.headers["Location"]).get_data(as_text=True)

    listing = supervisor.get("/watchlist/matches/").get_data(as_text=True)
    per_camera = listing.split('id="rejections-per-camera"')[1].split("</div>")[0]
    assert "cam-07</span>: 1" in per_camera
    assert "KZ-77</span>: 1" in listing.split('id="rejections-per-entry"')[1]

    actions = [e["action"] for e in audit.entries(central.db(), target=f"event:{event_id}")]
    assert {"watchlist.view_match", "watchlist.match_rejected", "media.view"} <= set(actions)


def test_nothing_is_dispatched_before_confirmation(app, central, footage):
    supervisor = logged_in(app, "supervisor")
    event_id = a_match(central, enrolled(supervisor, footage))
    supervisor.get(f"/watchlist/matches/{event_id}")
    assert central.db().execute("SELECT COUNT(*) FROM dispatches").fetchone()[0] == 0

    page = supervisor.get(f"/watchlist/matches/{event_id}").get_data(as_text=True)
    response = supervisor.post(
        f"/watchlist/matches/{event_id}",
        data={"decision": "confirmed", "note": "same scar, same jacket", "csrf_token": csrf_token(page)},
    )
    page = supervisor.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="match-state">confirmed' in page
    assert (
        "Routing is not running: send a patrol by hand." in page
    )  # the routing door was asked, and said why
    row = (
        central.db()
        .execute("SELECT decision, dispatch FROM watchlist_reviews WHERE event_id = ?", [event_id])
        .fetchone()
    )
    assert row[0] == "confirmed" and "by hand" in row[1]
