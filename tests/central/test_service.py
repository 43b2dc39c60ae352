"""``kuzet central run`` as a whole: it ingests, runs retention, and stops cleanly on SIGTERM."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import threading
import urllib.request
from datetime import timedelta

import pytest
from support.ingest import REPO, dead_letter_rows, event, make_central, new_id, up, wait_for

from kuzet.central.broker import free_port
from kuzet.central.ingest.service import IngestService
from kuzet.central.service import serve
from kuzet.central.store import dead_letters
from kuzet.shared import messages, timeutil
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link


def run_in_thread(central) -> tuple[threading.Thread, threading.Event, list[int]]:
    stop, status = threading.Event(), []
    thread = threading.Thread(target=lambda: status.append(serve(central, stop)), daemon=True)
    thread.start()
    return thread, stop, status


def test_serve_ingests_and_runs_retention_until_stopped(tmp_path, mosquitto):
    http_port = free_port()
    central = make_central(
        tmp_path, mosquitto.url, http={"port": http_port}, ingest={"retention_interval_s": 0.2}
    )
    long_ago = timeutil.to_wire(timeutil.utc_now() - timedelta(days=400))
    conn = central.db().conn
    with conn:
        dead_letters.add(conn, up("cam-1", "event"), b"junk from last year", "not JSON", long_ago, 1024)

    IngestService(central).start().stop()  # central's persistent session: nothing sent from now on is lost
    thread, stop, status = run_in_thread(central)
    try:
        device = Link(MqttSection(url=mosquitto.url), "cam-1-test").start()
        message = event("cam-1", new_id(), 0)
        device.publish(up("cam-1", "event"), messages.encode(message)).wait_for_publish(5)
        device.stop()
        wait_for(lambda: central.db()["events"].count == 1, what="the event stored by the running central")
        wait_for(lambda: not dead_letter_rows(central), what="retention removing the old letter")
        if importlib.util.find_spec("kuzet.central.web") is not None:
            health = wait_for(lambda: _get(f"http://127.0.0.1:{http_port}/healthz"), what="the web page")
            assert health == 200
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive() and status == [0]


@pytest.mark.broker  # central's embedded broker
def test_serve_with_the_embedded_broker(tmp_path):
    pytest.importorskip("amqtt")
    port = free_port()
    central = make_central(
        tmp_path,
        f"mqtt://127.0.0.1:{port}",
        broker={"embedded": True, "port": port},
        http={"port": free_port()},
    )
    thread, stop, status = run_in_thread(central)
    try:
        device = Link(MqttSection(url=f"mqtt://127.0.0.1:{port}", protocol="3.1.1"), "cam-2-test").start()
        # Central subscribes once it has started everything; until then an event has no one to go to.
        for _ in range(60):
            device.publish(
                up("cam-2", "event"), messages.encode(event("cam-2", new_id(), 0))
            ).wait_for_publish(5)
            if _within(lambda: central.db()["events"].count > 0, 0.5):
                break
        assert central.db()["events"].count > 0
        device.stop()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert status == [0]


def test_central_command_stops_cleanly_on_sigterm(tmp_path, mosquitto):
    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nurl = "{mosquitto.url}"\n\n[http]\nport = {free_port()}\n\n[storage]\ndir = "data"\n'
        "\n[ingest]\naccept_unregistered = true\n"
    )
    # Central's persistent session (client id central-pavlodar) exists before the process starts.
    IngestService(make_central(tmp_path / "session", mosquitto.url)).start().stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "kuzet.shared.cli", "central", "--config", str(config), "run"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        db_path = tmp_path / "data" / "kuzet.db"
        device = Link(MqttSection(url=mosquitto.url), "cam-3-test").start()
        device.publish(up("cam-3", "event"), messages.encode(event("cam-3", new_id(), 0))).wait_for_publish(5)
        device.stop()
        wait_for(
            lambda: db_path.exists() and _events_in(db_path) == 1, what="the event stored by the process"
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "central is stopping" in output


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


def _events_in(db_path) -> int:
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.OperationalError:  # the process is still creating the schema
            return 0


def _within(condition, seconds: float) -> bool:
    try:
        wait_for(condition, timeout_s=seconds)
    except AssertionError:
        return False
    return True


def test_dispatch_api_and_page_work_under_serve(tmp_path, mosquitto):
    """Through the real start-up path (``serve``): routing's API acts, and the event page offers dispatching.
    A web app without a running routing service offers no dispatch buttons and its API says so."""
    from support.patrol import Camera, inbox_has, point, start_badge

    from kuzet.central.auth import tokens, users
    from kuzet.central.web import create_app

    http_port = free_port()
    central = make_central(
        tmp_path, mosquitto.url, http={"port": http_port}, routing={"policy": "confirm", "ack_timeout_s": 60}
    )
    users.create_user(central.db(), "aigerim", "correct horse battery 7", "operator", actor="test")
    token = tokens.create_token(central.db(), "aigerim", "test", actor="test")
    IngestService(central).start().stop()  # central's persistent session exists before it starts
    thread, stop, status = run_in_thread(central)
    api = Api(f"http://127.0.0.1:{http_port}", token)
    camera = Camera(mosquitto.url)
    badge = None
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{http_port}/healthz") == 200, what="the web page")
        badge = start_badge(tmp_path, mosquitto.url, "badge-near", point(150))
        wait_for(
            lambda: [u for u in api.ok("/api/v1/units")["units"] if u["device_id"] == "badge-near"],
            what="the badge listed by GET /api/v1/units",
        )
        event_id = camera.event(point(0))
        [proposal] = wait_for(
            lambda: api.ok("/api/v1/dispatches?state=proposed")["dispatches"], what="routing's proposal"
        )
        assert proposal["event_id"] == event_id and proposal["unit"] == "badge-near"
        code, page = api.get(f"/events/{event_id}", raw=True)
        assert code == 200 and 'id="recommend"' in page and 'data-can-dispatch="1"' in page
        code, sent = api.post(f"/api/v1/dispatches/{proposal['dispatch_id']}/confirm")
        assert code == 200 and sent["state"] == "sent"
        wait_for(inbox_has(badge, proposal["dispatch_id"]), what="the dispatch at the badge")
    finally:
        camera.stop()
        if badge is not None:
            badge.stop()
        stop.set()
        thread.join(timeout=60)
    assert status == [0]

    # The same page from an app that has no routing service attached: no buttons that could only fail.
    client = create_app(central).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/units", headers=headers).status_code == 503
    page = client.get(f"/events/{event_id}", headers=headers).get_data(as_text=True)
    assert 'id="recommend"' not in page and 'data-can-dispatch="0"' in page


class Api:
    """Central's HTTP API as a tool uses it: over the network, with a bearer token."""

    def __init__(self, base: str, token: str):
        self.base, self.headers = base, {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _call(self, method: str, path: str, body: dict | None = None, raw: bool = False):
        import json
        import urllib.error

        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, text if raw else json.loads(text)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get(self, path: str, raw: bool = False):
        return self._call("GET", path, raw=raw)

    def ok(self, path: str) -> dict:
        code, body = self.get(path)
        assert code == 200, f"GET {path}: {code} {body}"
        return body

    def post(self, path: str, body: dict | None = None):
        return self._call("POST", path, body or {})


def test_a_stopped_central_leaves_no_file_descriptors_open(tmp_path, mosquitto):
    # Tests and the demo start central many times in one process; every thread's database connection and
    # every socket it opened must be gone when it stops, or a long run passes select()'s 1,024 limit.
    import gc
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def serve_once(n: int) -> None:
        http_port = free_port()
        central = make_central(tmp_path / str(n), mosquitto.url, http={"port": http_port})
        thread, stop, status = run_in_thread(central)
        try:
            wait_for(lambda: _get(f"http://127.0.0.1:{http_port}/healthz"), what="the web page")
            for _ in range(5):  # a few request threads, each with its own connection
                _get(f"http://127.0.0.1:{http_port}/healthz")
        finally:
            stop.set()
            thread.join(timeout=60)
        assert status == [0]

    serve_once(0)  # imports, caches and the first connection pools settle here
    gc.disable()  # nothing may depend on a collection happening to run
    try:
        before = open_fds()
        serve_once(1)
        serve_once(2)
        assert open_fds() <= before
    finally:
        gc.enable()
