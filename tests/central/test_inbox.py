"""Routing's inbox across processes (``central.inbox``): an ingest worker keeps, in its own transaction, what
the routing leader will take, and nothing routing would only throw away."""

from __future__ import annotations

import time

from kuzet.central import inbox
from kuzet.central.ingest.batch import Incoming, Valid
from kuzet.central.store import portable
from kuzet.shared import messages, topics

SITE = "pavlodar"


def arrived(message: messages.Envelope) -> Valid:
    incoming = Incoming(topics.up(SITE, message.device, message.type), messages.encode(message), time.time())
    return Valid(incoming, SITE, message, incoming.received_at)


def test_an_ingest_worker_keeps_what_routing_takes_in_order_and_not_the_cameras_heartbeats(store):
    kept = [
        messages.Status(
            device="badge-01", kind="badge", duty="available", software_version="1.0", uptime_s=5.0
        ),
        messages.Location(
            device="badge-01", position={"lat": 52.28, "lon": 76.96}, fix="gps", duty="available"
        ),
        messages.Availability(device="cam-01", state="offline"),
    ]
    # A city's cameras send most of its messages, their heartbeats every 10 s: routing has no use for them.
    dropped = [messages.Status(device="cam-01", kind="camera", software_version="1.0", uptime_s=5.0)]
    with store.transaction() as conn:
        inbox.keep(conn, [arrived(message) for message in (dropped[0], *kept)])
    with store.connection() as db:
        rows = portable.rows(db, "SELECT topic, payload FROM routing_inbox ORDER BY id")
    assert [row["topic"] for row in rows] == [topics.up(SITE, m.device, m.type) for m in kept]
    assert [messages.decode(row["topic"], bytes(row["payload"])).id for row in rows] == [m.id for m in kept]


def test_the_leader_reads_what_ingest_keeps_as_soon_as_it_commits_not_at_its_next_round(
    tmp_path, postgres_url
):
    """On PostgreSQL an ingest worker's transaction notifies the leader's reader, which takes the rows at once:
    with rounds 60 s apart, the badge's position is handed to routing within seconds, and only after the
    commit (nothing is read of a transaction still open)."""
    from support.ingest import make_central

    central = make_central(tmp_path, "mqtt://127.0.0.1:1", store={"url": postgres_url})
    handled: list[str] = []
    reader = inbox.InboxReader(
        central, lambda message, site: handled.append(message.device), lambda: True, 60.0, postgres_url
    ).start()
    try:
        deadline = time.monotonic() + 10
        while not reader.waker.listening.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # its first round (an empty inbox) is over: the next is 60 s away
        position = messages.Location(
            device="badge-07", position={"lat": 52.28, "lon": 76.96}, fix="gps", duty="available"
        )
        db = central.db()
        with portable.transaction(db):
            inbox.keep(db, [arrived(position)])
            time.sleep(0.5)
            assert handled == []  # not committed yet
        deadline = time.monotonic() + 10
        while not handled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert handled == ["badge-07"] and reader.applied == 1
    finally:
        reader.stop()
        central.close()
