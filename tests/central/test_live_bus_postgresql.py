"""Live updates across central processes through PostgreSQL LISTEN/NOTIFY: an update published in one
process's hub reaches the pages of another process's hub, once, and never echoes back; an update too big
for a notification arrives as its keys; a burst is packed into few notifications, in order, heard only by
the processes that serve pages."""

from __future__ import annotations

import json
import threading

from support.ingest import wait_for

from kuzet.central.broker import free_port
from kuzet.central.live import LiveHub
from kuzet.central.store.live_bus import PostgresLiveBus


def test_an_update_reaches_the_other_process_once_and_does_not_echo(postgres_url):
    ingest_hub, web_hub = LiveHub(), LiveHub()
    buses = [PostgresLiveBus(postgres_url, hub).start() for hub in (ingest_hub, web_hub)]
    try:
        with ingest_hub.subscribe() as here, web_hub.subscribe() as there:
            ingest_hub.publish("event", {"event_id": "E1", "label": "Оставленный предмет"})
            got = there.get(timeout=10)
            assert (got.channel, got.data) == ("event", {"event_id": "E1", "label": "Оставленный предмет"})
            assert here.get(timeout=10).data["event_id"] == "E1"  # this process's own page, directly
            big = {"event_id": "E2", "attributes": "x" * 20_000}
            web_hub.publish("event", big)
            assert here.get(timeout=10).data == {"event_id": "E2", "partial": True}
            assert there.get(timeout=10).data == big
            # Nothing more: no echo of either update back to where it was published.
            assert here.get(timeout=1) is None and there.get(timeout=1) is None
    finally:
        for bus in buses:
            bus.stop()


def test_a_burst_goes_in_few_notifications_in_order_and_only_to_processes_that_listen(postgres_url):
    import psycopg

    from kuzet.central.store.live_bus import CHANNEL

    ingest_hub, routing_hub, web_hub = LiveHub(), LiveHub(), LiveHub()
    ingest = PostgresLiveBus(postgres_url, ingest_hub, listen=False).start()
    routing = PostgresLiveBus(postgres_url, routing_hub, listen=False).start()
    web = PostgresLiveBus(postgres_url, web_hub).start()
    with psycopg.connect(postgres_url, autocommit=True) as spy:
        spy.execute(f"LISTEN {CHANNEL}")
        try:
            with web_hub.subscribe() as page, routing_hub.subscribe() as nobody:
                # 300 heartbeats' worth of device rows, as ingest announces a batch.
                for n in range(300):
                    ingest_hub.publish("device", {"device_id": f"cam-{n:04d}", "status": "x" * 200})
                got = [page.get(timeout=10) for _ in range(300)]
                assert [u.data["device_id"] for u in got] == [f"cam-{n:04d}" for n in range(300)]
                notifications = list(spy.notifies(timeout=1.0))
                # Each notification as full as 7,900 bytes allow (about 30 such rows), not one per row.
                assert 300 / 35 <= len(notifications) <= 300 / 20, len(notifications)
                assert all(len(n.payload.encode()) <= 7900 for n in notifications)
                # A worker that serves no pages does not listen: PostgreSQL hands it nothing to parse.
                assert nobody.get(timeout=0.5) is None
                listeners = spy.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = %s", [f"LISTEN {CHANNEL}"]
                ).fetchone()[0]
                assert listeners == 1  # the web worker's (this connection's latest query is this SELECT)
        finally:
            for bus in (ingest, routing, web):
                bus.stop()


def test_a_caller_waiting_on_its_updates_goes_on_once_they_are_sent(postgres_url, monkeypatch):
    """``after_relayed`` (how ingest times its acknowledgements) calls back only after the notification that
    carries what was published before it; the updates published after it do not hold it up."""
    import psycopg

    from kuzet.central.store import live_bus

    happened: list[str] = []
    connect = psycopg.connect

    class Recording:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.conn.__exit__(*exc)

        def execute(self, sql, params=()):
            result = self.conn.execute(sql, params)
            happened.extend(f"sent {update['d']['event_id']}" for update in json.loads(params[1]))
            return result

    monkeypatch.setattr(live_bus.psycopg, "connect", lambda *a, **k: Recording(connect(*a, **k)))
    hub = LiveHub()
    bus = PostgresLiveBus(postgres_url, hub, listen=False).start()
    try:
        done = threading.Event()
        hub.publish("event", {"event_id": "E1"})
        hub.publish("event", {"event_id": "E2"})
        hub.after_relayed(lambda: happened.append("called back") or done.set())
        hub.publish("event", {"event_id": "E3"})
        assert done.wait(10)
        wait_for(lambda: "sent E3" in happened, what="the later update")
        assert happened == ["sent E1", "sent E2", "called back", "sent E3"]
    finally:
        bus.stop()


def test_a_caller_waiting_on_its_updates_is_not_held_while_postgresql_is_unreachable():
    """Live updates are a hint: with the server gone they are dropped, and whoever waits on them (ingest's
    acknowledgements of stored messages) goes on."""
    hub = LiveHub()
    bus = PostgresLiveBus(f"postgresql://kuzet@127.0.0.1:{free_port()}/kuzet", hub, listen=False).start()
    try:
        done = threading.Event()
        hub.publish("event", {"event_id": "E1"})
        hub.after_relayed(done.set)
        assert done.wait(10)
    finally:
        bus.stop()


def test_an_update_with_a_lone_surrogate_neither_stops_the_bus_nor_holds_those_waiting(postgres_url):
    """Python's JSON takes "\\ud800" (an API body, say) into a string that is not UTF-8: the bus sends it
    escaped and goes on; a sender thread that died on it would hold every acknowledgement of ingest's."""
    ingest_hub, web_hub = LiveHub(), LiveHub()
    buses = [PostgresLiveBus(postgres_url, hub).start() for hub in (ingest_hub, web_hub)]
    try:
        with web_hub.subscribe() as page:
            done = threading.Event()
            ingest_hub.publish("event", {"event_id": "E1", "label": "\ud800 broken"})
            ingest_hub.after_relayed(done.set)
            ingest_hub.publish("event", {"event_id": "E2", "label": "Драка"})
            assert done.wait(10)
            got = [page.get(timeout=10), page.get(timeout=10)]
            assert [(u.data["event_id"], u.data["label"]) for u in got] == [
                ("E1", "\ud800 broken"),
                ("E2", "Драка"),
            ]
    finally:
        for bus in buses:
            bus.stop()
