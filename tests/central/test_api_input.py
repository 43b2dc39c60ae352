"""Issue 17, item 13: every API endpoint checks what it is sent and answers 4xx with the reason.

Schemathesis found four requests answered 500 (a JSON object as a command name, ``[null,null]`` as the body
of a revocation, a limit and an audit ``before`` beyond SQLite's integers); the first tests send exactly
those. Then every /api/v1 route gets malformed input (test_every_api_route_is_listed_here keeps the table
complete), and an unauthenticated change gets 401 before any CSRF check."""

from __future__ import annotations

import pytest
from support.web import insert_event, make_central, token_for

from kuzet.central.routing.service import RoutingService
from kuzet.central.store import registry
from kuzet.central.web import create_app
from kuzet.shared import ids

DISPATCH = ids.new_id()  # no such dispatch: the body is refused before it is looked up


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A central with one account per role, an event and a camera, and routing (not started: only refused
    requests reach it)."""
    central = make_central(tmp_path_factory.mktemp("input"))
    event = insert_event(central)
    registry.register(
        central.db(),
        registry.Registration(device_id="cam-01", kind="camera", site="pavlodar"),
        "test",
    )
    client = create_app(central, RoutingService(central)).test_client()
    yield client, event["event_id"], {"Authorization": f"Bearer {token_for(central, 'admin')}"}
    central.close()


def _error(response, status: int = 400) -> str:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    message = response.get_json()["error"]
    assert message and "went wrong" not in message
    return message


# --- the four requests schemathesis found -------------------------------------------------------------------


def test_a_json_object_as_a_command_name_is_refused(setup):
    client, _, admin = setup
    response = client.post("/api/v1/devices/cam-01/commands", json={"name": {"a": 1}}, headers=admin)
    assert "name" in _error(response)


def test_a_list_as_the_body_of_a_revocation_is_refused(setup):
    client, _, admin = setup
    response = client.post("/api/v1/devices/cam-01/revoke", json=[None, None], headers=admin)
    assert "JSON object" in _error(response)
    assert client.get("/api/v1/devices/cam-01", headers=admin).get_json()["revoked_at"] is None


def test_a_dead_letter_limit_beyond_sqlite_is_refused(setup):
    client, _, admin = setup
    response = client.get("/api/v1/dead-letters?limit=-768355708874367172608", headers=admin)
    assert "limit must be a whole number from 1 to 1000" in _error(response)


def test_an_audit_before_beyond_sqlite_is_refused(setup):
    client, _, admin = setup
    response = client.get("/api/v1/audit?before=32589158477190044729", headers=admin)
    assert "before must be a whole number from 0" in _error(response)


# --- every route, malformed ----------------------------------------------------------------------------------

NOT_AN_OBJECT = [[None, None], "text", 7, None]
LIMITS = ["limit=-1", "limit=0", "limit=1001", "limit=x", "limit=1e3", "limit=99999999999999999999999"]

# (method, path): malformed query strings, then malformed JSON bodies; each must get 400. {event}, {dispatch}:
# real ids; routes taking neither are listed with nothing (they get the generic checks below).
ROUTES: dict[tuple[str, str], tuple[list[str], list]] = {
    ("GET", "/api/v1/openapi.json"): ([], []),
    ("GET", "/api/v1/watchlist"): ([], []),
    ("POST", "/api/v1/watchlist"): ([], NOT_AN_OBJECT),
    ("GET", "/api/v1/watchlist/{entry_id}"): ([], []),
    ("PUT", "/api/v1/watchlist/{entry_id}"): ([], []),
    ("DELETE", "/api/v1/watchlist/{entry_id}"): ([], []),
    ("POST", "/api/v1/watchlist/{entry_id}/photos"): ([], []),
    ("GET", "/api/v1/me"): ([], []),
    ("GET", "/api/v1/events"): (LIMITS, []),
    ("GET", "/api/v1/events/counters"): ([], []),
    ("GET", "/api/v1/events/{event}"): ([], []),
    ("POST", "/api/v1/events/{event}/ack"): ([], []),
    ("POST", "/api/v1/events/{event}/assign"): (
        [],
        [
            *NOT_AN_OBJECT,
            {},
            {"assignee": 5},
            {"assignee": " "},
            {"assignee": "x" * 65},
            {"assignee": "x", "y": 1},
        ],
    ),
    ("POST", "/api/v1/events/{event}/close"): (
        [],
        [*NOT_AN_OBJECT, {}, {"note": ["done"]}, {"note": "\t"}, {"note": "x" * 2001}],
    ),
    ("POST", "/api/v1/events/{event}/hold"): ([], [*NOT_AN_OBJECT, {"hold": "yes"}, {"hold": 1}]),
    ("GET", "/api/v1/devices"): ([], []),
    ("POST", "/api/v1/devices"): (
        [],
        [
            *NOT_AN_OBJECT,
            {"device_id": "cam-02", "kind": "camera"},
            {"device_id": "cam-02", "kind": "drone", "site": "x"},
            {"device_id": "cam-02", "kind": "camera", "site": "x", "lat": "52.1"},
            {"device_id": "cam-02", "kind": "camera", "site": "x", "lat": 1e400},
        ],
    ),
    ("GET", "/api/v1/devices/cam-01"): ([], []),
    ("POST", "/api/v1/devices/cam-01/revoke"): ([], [*NOT_AN_OBJECT, {"reason": 5}, {"why": "x"}]),
    ("POST", "/api/v1/devices/cam-01/reinstate"): (
        [],
        [*NOT_AN_OBJECT, {}, {"reason": ""}, {"reason": False}],
    ),
    ("GET", "/api/v1/devices/cam-01/commands"): (LIMITS, []),
    ("POST", "/api/v1/devices/cam-01/commands"): (
        [],
        [
            *NOT_AN_OBJECT,
            {},
            {"name": {"a": 1}},
            {"name": "format_disk"},
            {"name": "snapshot", "args": [1]},
            {"name": "snapshot", "args": {"n": 2**64}},
            {"name": "snapshot", "args": {"n": [1]}},
            {"name": "snapshot", "args": {f"k{i}": i for i in range(21)}},
        ],
    ),
    ("GET", "/api/v1/devices/cam-01/evidence"): ([], []),
    ("GET", "/api/v1/devices/cam-01/live"): ([], []),
    ("GET", "/api/v1/incidents"): (["since=yesterday", "until=12:00"], []),
    ("POST", "/api/v1/incidents/ack"): (
        [],
        [*NOT_AN_OBJECT, {}, {"event_ids": []}, {"event_ids": ["not-a-ulid"]}, {"event_ids": "01"}],
    ),
    ("POST", "/api/v1/incidents/close"): (
        [],
        [*NOT_AN_OBJECT, {"event_ids": [DISPATCH]}, {"event_ids": [DISPATCH], "note": " "}],
    ),
    ("GET", "/api/v1/alerts"): ([*LIMITS, "state=closed"], []),
    ("POST", "/api/v1/alerts/99999999999999999999999/ack"): ([], []),
    ("GET", "/api/v1/map"): ([], []),
    ("GET", "/api/v1/stream"): ([], []),
    ("GET", "/api/v1/stats"): (["period=week", "by=colour", "period="], []),
    ("GET", "/api/v1/stats.csv"): (["period=week", "by=colour"], []),
    ("GET", "/api/v1/audit"): (
        [*LIMITS, "before=-1", "before=x", "before=32589158477190044729", "before=9223372036854775808"],
        [],
    ),
    ("GET", "/api/v1/audit/verify"): ([], []),
    ("GET", "/api/v1/dead-letters"): (LIMITS, []),
    ("GET", "/api/v1/users"): ([], []),
    ("GET", "/api/v1/units"): ([], []),
    ("PATCH", "/api/v1/units/badge-01"): (
        [],
        [
            *NOT_AN_OBJECT,
            {"callsign": 7},
            {"callsign": "x" * 41},
            {"capabilities": "k9"},
            {"capabilities": [""]},
        ],
    ),
    ("GET", "/api/v1/unit-board"): ([], []),
    ("POST", "/api/v1/units/badge-01/divert"): (
        [],
        [
            *NOT_AN_OBJECT,
            {},
            {"event_id": " "},
            {"event_id": 5},
            {"event_id": "{event}", "reason": "x" * 201},
        ],
    ),
    ("GET", "/api/v1/dispatches"): (LIMITS, []),
    ("POST", "/api/v1/dispatches"): (
        [],
        [
            *NOT_AN_OBJECT,
            {},
            {"event_id": "{event}"},
            {"event_id": "{event}", "unit": 3},
            {"event_id": " ", "unit": "b"},
        ],
    ),
    ("POST", "/api/v1/dispatches/nearest"): (
        [],
        [*NOT_AN_OBJECT, {}, {"event_id": "\t"}, {"event_id": ["x"]}],
    ),
    ("POST", "/api/v1/dispatches/intercept/preview"): (
        [],
        [*NOT_AN_OBJECT, {}, {"lat": 52.3}, {"lat": 52.3, "lon": 76.9, "radius_m": 0}],
    ),
    ("GET", "/api/v1/dispatches/recommend"): (["", "event_id=", "event_id=%20"], []),
    ("GET", "/api/v1/dispatches/{dispatch}"): ([], []),
    ("POST", "/api/v1/dispatches/{dispatch}/confirm"): ([], []),
    ("POST", "/api/v1/dispatches/{dispatch}/cancel"): (
        [],
        [*NOT_AN_OBJECT, {}, {"reason": " "}, {"reason": 1}],
    ),
    ("POST", "/api/v1/dispatches/{dispatch}/reassign"): ([], [*NOT_AN_OBJECT, {}, {"unit": None}]),
    ("POST", "/api/v1/dispatches/intercept"): (
        [],
        [
            *NOT_AN_OBJECT,
            {},
            {"lat": 52.3},
            {"lat": 91, "lon": 0},
            {"lat": 52.3, "lon": "76.9"},
            {"lat": 52.3, "lon": 76.9, "radius_m": 0},
            {"lat": 52.3, "lon": 76.9, "direction_deg": 360},
            {"event_id": "{event}", "radius_m": True},
        ],
    ),
}
CASES = [
    pytest.param(method, path, query, None, id=f"{method} {path} ?{query}")
    for (method, path), (queries, _) in ROUTES.items()
    for query in queries
] + [
    pytest.param(method, path, "", body, id=f"{method} {path} {str(body)[:40]}")
    for (method, path), (_, bodies) in ROUTES.items()
    for body in bodies
]


def _fill(value, event_id: str):
    if isinstance(value, str):
        return value.replace("{event}", event_id).replace("{dispatch}", DISPATCH)
    if isinstance(value, dict):
        return {key: _fill(item, event_id) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES)
def test_malformed_input_is_refused_with_the_reason(setup, method, path, query, body):
    client, event_id, admin = setup
    url = _fill(path, event_id) + (f"?{query}" if query else "")
    if body is None and not query:  # a JSON null
        response = client.open(
            url, method=method, data="null", content_type="application/json", headers=admin
        )
    else:
        response = client.open(url, method=method, json=_fill(body, event_id), headers=admin)
    _error(response)


# Live streams never end by themselves: tests/central/test_web_live.py drives them.
FINITE_ROUTES = [(method, path) for method, path in ROUTES if not path.endswith(("/stream", "/live"))]


@pytest.mark.parametrize(("method", "path"), FINITE_ROUTES)
def test_no_route_answers_500_to_garbage(setup, method, path):
    """Whatever the route takes, numbers beyond SQLite and a body that is not an object get 4xx (or are
    ignored by a route that reads neither), never a 500."""
    client, event_id, admin = setup
    url = _fill(path, event_id) + "?limit=-768355708874367172608&before=32589158477190044729&period=%00"
    response = client.open(url, method=method, json=[None, None], headers=admin)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.get_json()["error"]


def test_every_api_route_is_listed_here(setup):
    import re

    client, _, _ = setup
    routed = {
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    names = {"event": "event_id", "dispatch": "dispatch_id", "entry_id": "entry_id"}
    listed = set()
    for method, path in ROUTES:
        path = re.sub(r"\{(\w+)\}", lambda m: "{" + names[m.group(1)] + "}", path)
        path = path.replace("/cam-01", "/{device_id}").replace("/badge-01", "/{device}")
        listed.add((method, re.sub(r"/alerts/\d+/", "/alerts/{alert_id}/", path)))
    assert listed == routed


# --- 401 before CSRF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [key for key in ROUTES if key[0] != "GET"])
def test_an_unauthenticated_change_gets_401_not_a_csrf_error(setup, method, path):
    client, event_id, _ = setup
    response = client.open(_fill(path, event_id), method=method, json={})
    assert response.status_code == 401 and "log in" in response.get_json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_csrf_is_still_needed_once_logged_in(tmp_path):
    from support.web import login

    central = make_central(tmp_path)
    event = insert_event(central)
    client = create_app(central).test_client()
    assert client.post(f"/api/v1/events/{event['event_id']}/ack").status_code == 401
    login(client, "operator")
    response = client.post(f"/api/v1/events/{event['event_id']}/ack")
    assert response.status_code == 400 and "CSRF" in response.get_json()["error"]
    page = client.post("/login", data={"username": "operator", "password": "x"})  # log-in keeps its check
    assert page.status_code == 400
