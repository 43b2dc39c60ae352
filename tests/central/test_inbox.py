"""Routing's inbox across processes (``central.inbox``): an ingest worker keeps, in its own transaction, what
the routing leader will take, and nothing routing would only throw away."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from kuzet.central import inbox
from kuzet.central.ingest.batch import Incoming, Valid
from kuzet.central.routing.worker import Settle, Worker
from kuzet.central.store import portable
from kuzet.shared import messages, timeutil, topics

SITE = "pavlodar"


def arrived(message: messages.Envelope) -> Valid:
    incoming = Incoming(topics.up(SITE, message.device, message.type), messages.encode(message), time.time())
    return Valid(incoming, SITE, message, incoming.received_at)


def at_once(central):
    """Routing's side of a settle, done on the caller's thread: the rows deleted, in a transaction."""

    def settle(settling: Settle) -> None:
        db = central.db()
        with portable.transaction(db):
            settling.write(db)
        settling.done(True)

    return settle


def position(device: str) -> messages.Location:
    return messages.Location(
        device=device, position={"lat": 52.28, "lon": 76.96}, fix="gps", duty="available"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def central(request, tmp_path):
    from support.ingest import make_central

    store = {"url": request.getfixturevalue("postgres_url")} if request.param == "postgresql" else {}
    made = make_central(tmp_path, "mqtt://127.0.0.1:1", store=store)
    yield made
    made.close()


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
        central, lambda message, site: handled.append(message.device), at_once(central), 60.0, postgres_url
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


def test_the_next_round_is_read_while_routing_applies_the_last_and_waits_only_two_rounds_behind(central):
    """The leader reads its inbox again while routing still applies the round before (those rows, handed over
    and not yet deleted, are left out); only a third round waits, until routing settles the first."""
    handled: list[str] = []
    settles: list[Settle] = []
    reader = inbox.InboxReader(
        central, lambda message, site: handled.append(message.device), settles.append, 60
    )
    db = central.db()

    def keep(*devices: str) -> None:
        with portable.transaction(db):
            inbox.keep(db, [arrived(position(device)) for device in devices])

    keep("badge-1", "badge-2")
    assert reader.run_once() == 2 and handled == ["badge-1", "badge-2"] and len(settles) == 1
    keep("badge-3")
    assert reader.run_once() == 1 and handled[2:] == ["badge-3"]  # not the first round's rows again
    keep("badge-4")
    third = threading.Thread(target=reader.run_once)
    third.start()
    time.sleep(0.3)
    assert handled[3:] == [] and third.is_alive()  # two rounds unsettled: the third waits

    first = settles[0]
    with portable.transaction(db):
        first.write(db)  # routing's transaction: the rows go with what routing did with them
    first.done(True)
    third.join(5)
    assert handled[3:] == ["badge-4"] and reader.applied == 2
    left = portable.rows(db, "SELECT topic FROM routing_inbox ORDER BY id")
    assert [row["topic"] for row in left] == [topics.up(SITE, d, "location") for d in ("badge-3", "badge-4")]


def test_a_round_routing_could_not_settle_is_read_again(central):
    """Where routing's transaction and its retry both failed (the store away), the round's rows are still in
    the inbox and the next round takes them again: routing may see a message twice, never not at all."""
    handled: list[str] = []
    settles: list[Settle] = []
    reader = inbox.InboxReader(
        central, lambda message, site: handled.append(message.device), settles.append, 60
    )
    db = central.db()
    with portable.transaction(db):
        inbox.keep(db, [arrived(position("badge-1"))])
    assert reader.run_once() == 1
    assert reader.run_once() == 0  # in flight: not read again meanwhile
    settles[0].done(False)
    assert reader.run_once() == 1 and handled == ["badge-1", "badge-1"] and reader.applied == 0


def test_routing_deletes_the_rows_in_the_transaction_that_applies_them_and_settles_a_failed_batch_alone(
    central,
):
    """The worker writes a settle in the transaction of the batch it follows: a batch that fails is rolled
    back, and its rows are settled in a transaction of their own (they would only fail again); only where
    that fails too is the round left to be read again."""
    applied: list[list] = []
    outcome: list[bool] = []

    def apply(work: list) -> None:
        applied.append([message for _, message in work])
        if "boom" in applied[-1]:
            raise RuntimeError("a bug in routing")
        portable.execute(central.db(), "INSERT INTO routing_inbox (site, topic, payload, received_at) "
                         "VALUES ('s', 'applied', ?, 'now')", [b"x"])  # fmt: skip

    def delete_rows(db) -> None:
        portable.execute(db, "DELETE FROM routing_inbox WHERE topic = 'kept'")

    def failing(db) -> None:
        raise RuntimeError("the store is away")

    db = central.db()
    with portable.transaction(db):
        portable.execute(db, "INSERT INTO routing_inbox (site, topic, payload, received_at) "
                         "VALUES ('s', 'kept', ?, 'now')", [b"x"])  # fmt: skip
    worker = Worker(central, apply, lambda due: None)
    worker.start()
    try:
        worker.submit("s", "fine")
        worker.settle(Settle(delete_rows, outcome.append))
        assert worker.drain(5)
        topics_left = [r["topic"] for r in portable.rows(db, "SELECT topic FROM routing_inbox")]
        assert topics_left == ["applied"] and outcome == [True]  # applied and deleted, together

        with portable.transaction(db):
            portable.execute(db, "INSERT INTO routing_inbox (site, topic, payload, received_at) "
                             "VALUES ('s', 'kept', ?, 'now')", [b"x"])  # fmt: skip
        worker.submit("s", "boom")
        worker.settle(Settle(delete_rows, outcome.append))
        assert worker.drain(5)
        topics_left = [r["topic"] for r in portable.rows(db, "SELECT topic FROM routing_inbox")]
        assert topics_left == ["applied"] and outcome == [True, True]  # rolled back, settled alone

        worker.submit("s", "boom")
        worker.settle(Settle(failing, outcome.append))
        assert worker.drain(5) and outcome == [True, True, False]
    finally:
        worker.stop()


def test_each_round_tells_routing_how_far_behind_the_devices_it_is(central):
    """The reader tells routing, each round, how long ago the oldest row not yet applied reached central (a
    badge's acknowledgement deadline waits that much longer): a round handed over and not yet settled still
    counts when the next read finds nothing new; all applied and nothing waiting, not behind at all."""
    told: list[float] = []
    settles: list[Settle] = []
    reader = inbox.InboxReader(central, lambda message, site: None, settles.append, 60, behind=told.append)
    late = arrived(position("badge-1"))
    late = Valid(
        late.incoming, SITE, late.message, timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=40))
    )
    db = central.db()
    with portable.transaction(db):
        inbox.keep(db, [late, arrived(position("badge-2"))])
    assert reader.run_once() == 2 and told[-1] == pytest.approx(40, abs=2)
    assert reader.run_once() == 0 and told[-1] == pytest.approx(40, abs=2)  # handed over, not yet applied
    at_once(central)(settles[0])
    assert reader.run_once() == 0 and told[-1] == 0.0
