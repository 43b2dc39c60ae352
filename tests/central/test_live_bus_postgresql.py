"""Live updates across central processes through PostgreSQL LISTEN/NOTIFY: an update published in one
process's hub reaches the pages of another process's hub, once, and never echoes back; an update too big
for a notification arrives as its keys."""

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
