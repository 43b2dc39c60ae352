"""Central itself on either store (``[store] url``), on SQLite and on the throw-away PostgreSQL cluster:
ingest's writer through a real Mosquitto stores, repeats and refuses alike; the whole loop (camera event,
routing, badge, API, audit) runs alike."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import psycopg
import pytest
import tomli_w
from support import web
from support.ingest import REPO, event, make_central, new_id, up, wait_for
from support.patrol import Camera, inbox_has, point, start_badge

from kuzet.central.auth import preferences
from kuzet.central.broker import free_port
from kuzet.central.ingest.service import IngestService
from kuzet.central.service import start_parts
from kuzet.central.store import portable
from kuzet.shared import messages
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request) -> str:
    """``[store] url``: empty (the embedded SQLite file), then a fresh database on the throw-away cluster."""
    return "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def central(tmp_path, mosquitto, store_url):
    made = make_central(tmp_path, mosquitto.url, store={"url": store_url})
    yield made
    made.close()


@pytest.fixture
def device(mosquitto):
    link = Link(MqttSection(url=mosquitto.url), "cam-backends").start()
    yield link
    link.stop()


def rows(central, sql: str, *params) -> list[dict]:
    return portable.rows(central.db(), sql, list(params))


def send(link: Link, message) -> None:
    link.publish(up(message.device, message.type), messages.encode(message)).wait_for_publish(5)


def test_ingest_stores_repeats_and_refuses_alike_on_either_store(central, device, store_url):
    assert central.store.backend == ("postgresql" if store_url else "sqlite")
    ingest = IngestService(central).start()
    try:
        event_id = new_id()
        opened = event("cam-1", event_id, 0, "open")
        send(device, opened)
        send(device, opened)  # redelivered: changes nothing
        send(device, event("cam-1", event_id, 2, "update", zone="gate"))
        send(device, event("cam-1", event_id, 1, "update", zone="yard"))  # late: timeline only
        device.publish(up("cam-1", "event"), b"{not json").wait_for_publish(5)
        wait_for(lambda: rows(central, "SELECT id FROM dead_letters"), what="the bad message dead-lettered")
        wait_for(
            lambda: len(rows(central, "SELECT msg_id FROM event_updates")) == 3, what="three timeline rows"
        )
        [row] = rows(central, "SELECT * FROM events")
        assert (row["event_id"], row["seq"], row["zone"], row["status"]) == (event_id, 2, "gate", "new")
        [letter] = rows(central, "SELECT topic, reason FROM dead_letters")
        assert letter["topic"] == up("cam-1", "event") and "JSON" in letter["reason"]
        assert ingest.counters.duplicates == 1 and ingest.counters.timeline_only == 1
        storage = ingest.health()["storage"]
        assert storage["database"] == central.store.backend
        assert storage["nearest_units"] == central.store.nearest_method
    finally:
        ingest.stop()


REFUSE_POISON = {  # stands in for any storage failure of one row (a constraint, a full page, a bug)
    "sqlite": [
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.label = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.label = 'poison' THEN RAISE EXCEPTION 'disk says no'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ],
}


def test_a_row_the_store_refuses_costs_only_its_own_message_on_either_store(central, device):
    """On PostgreSQL a batch's statements go pipelined, so a refused row's error surfaces at the commit, not
    at its own statement: the batch is still stored message by message, the refused one dead-lettered."""
    db = central.db()
    with portable.transaction(db):
        for sql in REFUSE_POISON[central.store.backend]:
            portable.execute(db, sql)
    ingest = IngestService(central).start()
    try:
        good = [event("cam-1", new_id(), 0) for _ in range(20)]
        poison = event("cam-1", new_id(), 0, label="poison")
        for message in good[:10] + [poison] + good[10:]:
            send(device, message)
        wait_for(
            lambda: len(rows(central, "SELECT event_id FROM events")) == len(good), what="every good event"
        )
        wait_for(
            lambda: rows(central, "SELECT reason FROM dead_letters"), what="the refused one dead-lettered"
        )
        [letter] = rows(central, "SELECT reason FROM dead_letters")
        assert "could not store" in letter["reason"] and "disk says no" in letter["reason"]
        stored = {row["event_id"] for row in rows(central, "SELECT event_id FROM events")}
        assert stored == {message.event_id for message in good}
    finally:
        ingest.stop()


def test_ingest_holds_messages_through_a_postgresql_restart(
    tmp_path, mosquitto, postgres_url, postgres_cluster
):
    """The server restarting under a running writer breaks its connection: the batch is held and stored on a
    new connection once the server is back, never dead-lettered."""
    central = make_central(tmp_path, mosquitto.url, store={"url": postgres_url})
    ingest = IngestService(central).start()
    link = Link(MqttSection(url=mosquitto.url), "cam-restart").start()
    try:
        before, after = new_id(), new_id()
        send(link, event("cam-1", before, 0))
        wait_for(lambda: rows(central, "SELECT 1 FROM events WHERE event_id = ?", before), what="first event")
        postgres_cluster.restart()
        send(link, event("cam-1", after, 0))

        def stored_after():
            try:  # the test's own connection breaks too; the next call makes a new one
                return rows(central, "SELECT 1 FROM events WHERE event_id = ?", after)
            except psycopg.OperationalError:
                return None

        wait_for(stored_after, timeout_s=30, what="the event sent across the restart")
        assert rows(central, "SELECT id FROM dead_letters") == []
        assert ingest.health()["problems"] == []  # the outage is over
    finally:
        link.stop()
        ingest.stop()
        central.close()


def _api(server, token: str, path: str):
    request = urllib.request.Request(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_camera_event_routed_to_badge_acknowledged_in_api_and_audited(tmp_path, mosquitto, store_url):
    """The loop the product exists for, as ``kuzet central run`` runs it (``start_parts``), on either store:
    a camera's event through a real Mosquitto is stored, routed to the nearest badge, acknowledged by it,
    shown by the API and audited, with the audit chain intact."""
    central = web.make_central(
        tmp_path, mqtt={"url": mosquitto.url}, store={"url": store_url}, routing={"ack_timeout_s": 30}
    )
    token = web.token_for(central, "supervisor")
    preferences.update(central.db(), "supervisor", language="ru")  # the log's notes said in Russian
    running = contextlib.ExitStack()
    parts = start_parts(central, running, web_host="127.0.0.1", web_port=0)
    camera = badge = None
    try:
        engine = "postgresql" if store_url else "sqlite"
        assert central.store.backend == parts.ingest.health()["storage"]["database"] == engine
        badge = start_badge(tmp_path, mosquitto.url, "badge-near", point(150))
        wait_for(
            lambda: (unit := parts.routing.units.get("badge-near")) and unit.online and unit.lat is not None,
            what="the badge known to routing",
        )
        camera = Camera(mosquitto.url)
        event_id = camera.event(point(0))

        [item] = wait_for(inbox_has(badge), what="the dispatch at the badge")
        assert item.dispatch.event_id == event_id
        badge.acknowledge()

        def acknowledged():
            found = _api(parts.web, token, f"/api/v1/dispatches?event_id={event_id}&log=1")["dispatches"]
            return found if found and found[0]["state"] == "acknowledged" else None

        [dispatch] = wait_for(acknowledged, what="the acknowledgement shown by the API")
        assert dispatch["unit"] == "badge-near" and dispatch["mode"] == "nearest"
        assert [entry["state"] for entry in dispatch["log"]] == ["sent", "acknowledged"]
        sent = dispatch["log"][0]
        assert sent["detail"].startswith("nearest to badge-near, ")  # the API keeps the English
        assert sent["note"].startswith("ближайший наряд: badge-near, ") and "попытка 1" in sent["note"]
        shown = _api(parts.web, token, f"/api/v1/events/{event_id}")
        assert shown["event"]["status"] == "dispatched" and shown["event"]["dispatched_unit"] == "badge-near"
        assert [d["dispatch_id"] for d in shown["dispatches"]] == [dispatch["dispatch_id"]]

        audited = _api(parts.web, token, f"/api/v1/audit?target={dispatch['dispatch_id']}")["entries"]
        assert [(e["actor"], e["action"]) for e in reversed(audited)] == [
            ("routing", "dispatch.sent"),
            ("badge-near", "dispatch.acknowledged"),
        ]
        on_event = _api(parts.web, token, f"/api/v1/audit?target=event:{event_id}")["entries"]
        assert ("routing", "event.dispatched") in [(e["actor"], e["action"]) for e in on_event]
        assert _api(parts.web, token, "/api/v1/audit/verify") == {"ok": True, "first_bad_seq": None}
    finally:
        for device in (camera, badge):
            if device is not None:
                device.stop()
        running.close()


def test_central_command_runs_and_stores_on_postgresql(tmp_path, mosquitto, postgres_url):
    """``kuzet central run`` with ``[store] url``, as a process: it starts, stores a camera's event in
    PostgreSQL (and nothing in a SQLite file), says so on /healthz, and stops cleanly on SIGTERM."""
    port = free_port()
    config = tmp_path / "central.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "mqtt": {"url": mosquitto.url},
                "http": {"port": port},
                "storage": {"dir": str(tmp_path / "data")},
                "ingest": {"accept_unregistered": True},
                "store": {"url": postgres_url},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kuzet.shared.cli", "central", "--config", str(config), "run"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = wait_for(lambda: _healthz(port), timeout_s=60, what="central's /healthz")
        assert health["ingest"]["storage"]["database"] == "postgresql", health
        event_id = new_id()
        camera = Link(MqttSection(url=mosquitto.url), "cam-9-test").start()
        try:
            send(camera, event("cam-9", event_id, 0))
        finally:
            camera.stop()

        def stored():
            with psycopg.connect(postgres_url) as conn:
                return conn.execute("SELECT device FROM events WHERE event_id = %s", [event_id]).fetchall()

        assert wait_for(stored, what="the event stored in PostgreSQL") == [("cam-9",)]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "central is stopping" in output
    assert not (tmp_path / "data" / "kuzet.db").exists()


def _healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as answer:  # 503: running, but something is wrong; the body says what
        return json.loads(answer.read())
    except OSError:  # not listening yet
        return None


def test_an_operators_preferences_on_either_store(db):
    """Every page and the live stream read the reader's language from here (``web/i18n``)."""
    from kuzet.central.auth import preferences

    assert preferences.get(db, "aigerim") == preferences.Preferences()
    preferences.update(db, "aigerim", language="kk")
    changed = preferences.update(db, "aigerim", sound=False)
    assert changed == preferences.Preferences(language="kk", sound=False, notifications=True)
    assert preferences.get(db, "aigerim") == changed and preferences.get(db, "boris").language is None
    with pytest.raises(ValueError, match="unknown language"):
        preferences.update(db, "aigerim", language="xx")
    assert preferences.get(db, "aigerim").language == "kk"  # the refused change kept nothing
