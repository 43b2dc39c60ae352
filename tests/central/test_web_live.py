"""The live stream end to end without a browser: a camera publishes over a real Mosquitto, ingest stores it,
and the page's server-sent-event stream (served by waitress) carries it to the users allowed to see it."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from support.web import Camera, token_for

from kuzet.shared import ids


@pytest.fixture
def camera(mosquitto):
    device = Camera(mosquitto.url)
    yield device
    device.stop()


class Stream:
    def __init__(self, url: str, token: str, path: str = "/api/v1/stream"):
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=10)
        self.connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        assert self.response.readline().startswith(b"retry:")  # subscribed from here on

    def next_message(self) -> tuple[str, dict]:
        """The next message's channel and data (keep-alives skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line == "" and "event" in fields:
                return fields["event"], json.loads(fields["data"])
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value

    def next(self, channel: str) -> dict:
        while True:
            got, data = self.next_message()
            if got == channel:
                return data

    def close(self) -> None:
        self.response.close()  # the socket itself: the connection alone leaves it open under the response
        self.connection.close()


def test_event_published_over_mqtt_reaches_the_stream(live, camera):
    stream = Stream(live.web.url, token_for(live.central, "operator"))
    try:
        event_id = ids.new_id()
        camera.event(event_id)
        data = stream.next("event")
        assert data["event_id"] == event_id and data["status"] == "new"
        assert data["device"] == "cam-01" and data["zone"] == "platform" and data["track_ids"] == [7]
        device = stream.next("device")
        assert device["device_id"] == "cam-01" and "problems" in device
    finally:
        stream.close()


def test_technicians_stream_carries_devices_not_events(live, camera):
    stream = Stream(live.web.url, token_for(live.central, "technician"))
    try:
        camera.event(ids.new_id())
        # Ingest announces the event before the camera's device row; a technician gets only the latter.
        channel, data = stream.next_message()
        assert (channel, data["device_id"]) == ("device", "cam-01")
    finally:
        stream.close()


def test_operator_action_reaches_other_pages(live, camera):
    stream = Stream(live.web.url, token_for(live.central, "supervisor"))
    try:
        event_id = ids.new_id()
        camera.event(event_id)
        assert stream.next("event")["status"] == "new"
        client = http.client.HTTPConnection(*live.web.url.removeprefix("http://").split(":"), timeout=10)
        token = token_for(live.central, "operator")
        client.request("POST", f"/api/v1/events/{event_id}/ack", headers={"Authorization": f"Bearer {token}"})
        assert client.getresponse().status == 200
        client.close()
        update = stream.next("event")
        assert (update["event_id"], update["status"]) == (event_id, "acknowledged")
    finally:
        stream.close()


def test_a_stream_ends_when_its_account_is_disabled_or_token_revoked(live, camera):
    from kuzet.central.auth import tokens, users

    live.web.app.config["SSE_RECHECK_S"] = 0.2
    db = live.central.db()
    streams = {
        "disabled": Stream(live.web.url, token_for(live.central, "operator")),
        "revoked": Stream(live.web.url, token_for(live.central, "supervisor")),
        "untouched": Stream(live.web.url, token_for(live.central, "admin")),
    }
    try:
        users.set_disabled(db, "operator", True, actor="admin")
        [supervisor_token] = [t["id"] for t in tokens.list_tokens(db) if t["username"] == "supervisor"]
        tokens.revoke(db, supervisor_token, actor="admin")
        for name in ("disabled", "revoked"):
            channel, data = streams[name].next_message()
            assert channel == "end" and "disabled" in data["reason"], name
            assert streams[name].response.read() == b""  # and central closes it
        event_id = ids.new_id()
        camera.event(event_id)
        assert streams["untouched"].next("event")["event_id"] == event_id
    finally:
        for stream in streams.values():
            stream.close()


def test_the_board_asks_for_its_incidents_and_gets_each_change_folded(live, camera):
    token = token_for(live.central, "operator")
    board, other = Stream(live.web.url, token, "/api/v1/stream?with=incidents"), Stream(live.web.url, token)
    try:
        read = _get(live.web.url, token, "/api/v1/incidents")  # the board reads itself, then is pushed to
        assert read["total"] == 0 and "version" in read
        first, refire = ids.new_id(), ids.new_id()
        camera.event(first)
        camera.event(refire)
        pushed = board.next("incidents")
        while refire not in pushed["groups"][0]["incidents"][0]["event_ids"]:  # one push or two
            pushed = board.next("incidents")
        [group] = pushed["groups"]
        assert (group["device"], group["zone"], group["event_type"]) == ("cam-01", "platform", "loitering")
        [incident] = group["incidents"]
        assert incident["event_ids"] == [first, refire] and pushed["total"] == 1
        assert pushed["version"] > read["version"]
        assert _get(live.web.url, token, "/api/v1/incidents")["incidents"] == [incident]
        # A page that did not ask gets the events, not the board's pushes.
        channels = {other.next_message()[0] for _ in range(4)}
        assert "incidents" not in channels and "event" in channels
    finally:
        board.close()
        other.close()


def test_a_stream_asking_for_an_unknown_channel_is_refused(live):
    host, port = live.web.url.removeprefix("http://").split(":")
    client = http.client.HTTPConnection(host, int(port), timeout=10)
    token = token_for(live.central, "operator")
    client.request("GET", "/api/v1/stream?with=live", headers={"Authorization": f"Bearer {token}"})
    response = client.getresponse()
    assert response.status == 400 and "incidents" in json.loads(response.read())["error"]
    client.close()


def test_streams_beyond_their_threads_are_refused_until_one_ends(tmp_path, mosquitto):
    from support.web import LiveCentral

    running = LiveCentral(tmp_path, mosquitto.url, http={"streams": 2})
    try:
        token = token_for(running.central, "operator")
        first, second = Stream(running.web.url, token), Stream(running.web.url, token)
        host, port = running.web.url.removeprefix("http://").split(":")
        client = http.client.HTTPConnection(host, int(port), timeout=10)
        client.request("GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token}"})
        refused = client.getresponse()
        assert refused.status == 503 and refused.headers["Retry-After"] == "3"
        refused.read()
        # Requests still have threads of their own while every stream's is taken.
        assert _get(running.web.url, token, "/api/v1/incidents")["total"] == 0
        first.close()
        # Central notices the page has gone at its next keep-alive, and the slot is free again.
        third = None
        for _ in range(50):
            client.request("GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token}"})
            response = client.getresponse()
            if response.status == 200:
                third = response
                break
            response.read()
            time.sleep(0.1)
        assert third is not None and third.readline().startswith(b"retry:")
        second.close()
        client.close()
    finally:
        running.stop()


def _get(url: str, token: str, path: str) -> dict:
    host, port = url.removeprefix("http://").split(":")
    client = http.client.HTTPConnection(host, int(port), timeout=10)
    client.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = client.getresponse()
    assert response.status == 200
    body = json.loads(response.read())
    client.close()
    return body
