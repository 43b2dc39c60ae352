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

from central.broker import free_port
from central.ingest.service import IngestService
from central.service import serve
from central.store import dead_letters
from shared import messages, timeutil
from shared.config import MqttSection
from shared.mqtt import Link
from tests.ingest_helpers import REPO, dead_letter_rows, event, make_central, new_id, up, wait_for


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
        if importlib.util.find_spec("central.web") is not None:
            health = wait_for(lambda: _get(f"http://127.0.0.1:{http_port}/healthz"), what="the web page")
            assert health == 200
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive() and status == [0]


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
    )
    # Central's persistent session (client id central-pavlodar) exists before the process starts.
    IngestService(make_central(tmp_path / "session", mosquitto.url)).start().stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "central", "--config", str(config), "run"],
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
