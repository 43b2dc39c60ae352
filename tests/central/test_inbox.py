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


def test_an_ingest_worker_keeps_what_routing_takes_and_not_the_cameras_heartbeats(central):
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
    db = central.db()
    with portable.transaction(db):
        inbox.keep(db, [arrived(message) for message in (dropped[0], *kept)])
    rows = portable.rows(db, "SELECT topic, payload FROM routing_inbox ORDER BY id")
    assert [row["topic"] for row in rows] == [topics.up(SITE, m.device, m.type) for m in kept]
    assert [messages.decode(row["topic"], row["payload"]).id for row in rows] == [m.id for m in kept]
