"""Central's session bookkeeping at the broker on both stores (SQLite, PostgreSQL): the first session records
itself, a later connection without the session asks every unrevoked device to resend from the last commit
(less the margin), and ``stored_at`` never moves back. The link is a recorder of what would be published
(the full flow through a real broker is tests/system/test_broker_crash.py, on SQLite)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from support.ingest import SITE

from kuzet.central.config import StoreSection
from kuzet.central.ingest.session import BrokerSession
from kuzet.central.store import devices, portable
from kuzet.central.store.backend import open_store
from kuzet.shared import messages


class RecordingLink:
    client_id = "central-test"
    url = "mqtt://b:1883"  # the broker this link is to: the session keys its record on it

    def __init__(self):
        self.on_connect = []
        self.sent: list[tuple[str, messages.Envelope]] = []

    def publish(self, topic, payload, qos=1, retain=False):
        self.sent.append((topic, messages.decode(topic, payload)))

    def subscribe(self, topic_filter, handler, qos=1, wait_s=5.0, optional=False):
        pass  # $SYS/broker/uptime: this broker does not say (a restart is tested in test_broker_crash.py)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_store(StoreSection(url=url), tmp_path)
    yield opened
    opened.close()


def test_a_lost_session_asks_the_devices_to_resend_from_the_last_commit(store):
    with store.connection() as db:
        with portable.transaction(db):
            devices.record(
                db,
                {
                    "cam-1": devices.Heard(SITE, "2026-11-20T18:00:00.000Z"),
                    "badge-9": devices.Heard(SITE, "x"),
                },
                existing=(),
            )
            portable.execute(db, "UPDATE devices SET revoked_at = 'now' WHERE device_id = 'badge-9'")
        central = SimpleNamespace(
            config=SimpleNamespace(mqtt=SimpleNamespace(url="mqtt://b:1883")), db=lambda: db
        )
        link, last_commit = RecordingLink(), [None]
        session = BrokerSession(central, link, lambda: last_commit[0], margin_s=10)
        assert session.connected(False) is None  # the first session with this broker
        last_commit[0] = time.time() - 100
        session._record()
        last_commit[0] -= 50  # an older commit time never moves stored_at back
        session._record()
        since = session.connected(False)
        assert since == pytest.approx(time.time() - 110, abs=5)
        assert [topic.split("/")[3] for topic, _ in link.sent] == ["cam-1"]
        assert session.connected(True) is None and session.lost == 1
