"""Routing's way in when ingest runs in other processes (``kuzet central run --role ingest|routing``).

In one process routing takes device messages from ingest's hooks after each commit. Across processes, each
ingest worker keeps what routing takes in ``routing_inbox``, in the same transaction that stores the batch
(``keep``): nothing is acknowledged to the broker that routing will not get, and a worker killed before its
commit leaves nothing behind (the broker sends the batch again). The routing leader reads the rows oldest
first, hands them to routing and deletes them once routing has applied them (``InboxReader``). A leader
killed in between leaves its rows for the next one: routing may see a message twice, as after a broker's
redelivery, never not at all. Ids are not in commit order across workers on PostgreSQL, so there is no
cursor: what is applied is deleted, and a row committed late with a lower id is read at the next round.

On PostgreSQL the batch's transaction also notifies ``CHANNEL`` (delivered when it commits, once however many
rows), and the leader, listening on a connection of its own (``Waker``), reads the inbox at once rather than at
its next ``poll_s`` round: a dispatch no longer waits up to a round (0.2 s) for routing to look. The rounds go
on, for what a lost connection's notifications missed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kuzet.central.context import Central
from kuzet.central.operations import routing_takes
from kuzet.central.store import portable
from kuzet.central.store.live_bus import listen
from kuzet.shared import messages, timeutil
from kuzet.shared.messages import Envelope, InvalidMessage

log = logging.getLogger(__name__)

BATCH = 500  # rows read per round
CHANNEL = "kuzet_routing_inbox"


def keep(conn, items: list) -> None:
    """Ingest's ``on_stored`` callback (inside its batch transaction): keep the messages routing takes
    (``items``: ingest's ``Valid`` records)."""
    rows = [
        (item.site, item.incoming.topic, item.incoming.payload, item.received_at)
        for item in items
        if routing_takes(item.message)
    ]
    if not rows:
        return
    if portable.is_sqlite(conn):
        portable.executemany(
            conn, "INSERT INTO routing_inbox (site, topic, payload, received_at) VALUES (?, ?, ?, ?)", rows
        )
        return
    # One statement over arrays, in arrival order (ids by ordinality), rather than one per row.
    conn.execute(_KEEP_POSTGRESQL, [list(column) for column in zip(*rows, strict=True)])
    conn.execute("SELECT pg_notify(%s, '')", [CHANNEL])


_KEEP_POSTGRESQL = (
    "INSERT INTO routing_inbox (site, topic, payload, received_at) SELECT site, topic, payload, received_at "
    "FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[]) WITH ORDINALITY "
    "AS kept(site, topic, payload, received_at, n) ORDER BY n"
)


def waiting(db) -> tuple[int, float]:
    """(rows waiting for routing, seconds the oldest has waited) for /metrics and /healthz."""
    found = portable.row(db, "SELECT count(*) AS n, min(received_at) AS oldest FROM routing_inbox")
    if not found or not found["n"]:
        return 0, 0.0
    age = (timeutil.utc_now() - timeutil.from_wire(found["oldest"])).total_seconds()
    return int(found["n"]), max(age, 0.0)


def oldest_age_s(db) -> float:
    """Seconds the oldest row has waited (by id, through the primary key: cheap however many wait)."""
    found = portable.row(db, "SELECT received_at FROM routing_inbox ORDER BY id LIMIT 1")
    if not found:
        return 0.0
    return max((timeutil.utc_now() - timeutil.from_wire(found["received_at"])).total_seconds(), 0.0)


class Waker:
    """``LISTEN``s on ``CHANNEL`` on a connection of its own (``live_bus.listen``) and sets ``woken`` at each
    notification; after a lost connection it reconnects (the reader's rounds cover the gap)."""

    def __init__(self, url: str, woken: threading.Event):
        self.url, self.woken = url, woken
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routing-inbox-listen", daemon=True)

    def start(self) -> Waker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        listen(self.url, CHANNEL, lambda _: self.woken.set(), self._stop, self.listening, "routing inbox")


class InboxReader:
    """On the routing leader: hands what ingest kept to ``handle(message, site)``, waits for ``drain()``
    (routing applied it all) and deletes it; at once when ingest notifies (``url``: PostgreSQL's, to listen
    on), and every ``poll_s`` in any case."""

    def __init__(
        self,
        central: Central,
        handle: Callable[[Envelope, str], None],
        drain: Callable[[], bool],
        poll_s: float,
        url: str | None = None,
    ):
        self.central, self._handle, self._drain, self.poll_s = central, handle, drain, poll_s
        self.applied = 0  # rows handed to routing and deleted since this leader started
        self._stop = threading.Event()
        self._woken = threading.Event()
        self.waker = Waker(url, self._woken) if url else None
        self._thread = threading.Thread(target=self._run, name="routing-inbox", daemon=True)

    def start(self) -> InboxReader:
        if self.waker is not None:
            self.waker.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()
        self._thread.join(timeout=30)
        if self.waker is not None:
            self.waker.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._woken.clear()  # before reading: a notification from now on brings another round
            try:
                if self.run_once() == BATCH:
                    continue  # more are waiting: no pause
            except Exception:  # the store's trouble: the rows stay, tried again next round
                log.exception("routing inbox: reading failed; trying again in %.1f s", self.poll_s)
            self._woken.wait(self.poll_s)

    def run_once(self) -> int:
        """One round; returns how many rows it took."""
        db = self.central.db()
        rows = portable.rows(
            db, "SELECT id, site, topic, payload FROM routing_inbox ORDER BY id LIMIT ?", [BATCH]
        )
        for row in rows:
            try:
                message = messages.decode(row["topic"], bytes(row["payload"]))
            except InvalidMessage as exc:  # ingest decoded it; only a changed contract gets here
                log.error("routing inbox: %s no longer decodes (%s); dropped", row["topic"], exc.reason)
                continue
            self._handle(message, row["site"])
        if not rows:
            return 0
        began = time.monotonic()
        while not self._drain():  # applied before deleted: a leader killed meanwhile leaves them
            if self._stop.is_set():
                return 0
            log.warning("routing inbox: routing still applying after %.0f s", time.monotonic() - began)
        ids = [row["id"] for row in rows]
        with portable.transaction(db):
            portable.execute(db, f"DELETE FROM routing_inbox WHERE id IN ({', '.join('?' * len(ids))})", ids)
        self.applied += len(ids)
        return len(rows)
