"""Central itself on either store (``[store] url``): ingest's writer through a real Mosquitto stores, repeats
and refuses the same way on SQLite and on the throw-away PostgreSQL cluster."""

from __future__ import annotations

import pytest
from support.ingest import event, make_central, new_id, up, wait_for

from kuzet.central.ingest.service import IngestService
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
