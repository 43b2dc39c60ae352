"""Live updates across central processes through PostgreSQL LISTEN/NOTIFY: an update published in one
process's hub reaches the pages of another process's hub, once, and never echoes back; an update too big
for a notification arrives as its keys; a burst is packed into few notifications, in order, heard only by
the processes that serve pages."""

from __future__ import annotations

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
