"""Routing's way in when ingest runs in other processes (``kuzet central run --role ingest|routing``).

In one process routing takes device messages from ingest's hooks after each commit. Across processes, each
ingest worker keeps what routing takes in ``routing_inbox``, in the same transaction that stores the batch
(``keep``): nothing is acknowledged to the broker that routing will not get, and a worker killed before its
commit leaves nothing behind (the broker sends the batch again). The routing leader reads the rows oldest
first and hands them to routing, which deletes them in the transaction that applies them (``InboxReader``):
what routing did with a row and the row's deletion commit together. A leader killed before that commit
leaves its rows for the next one; routing may see a message twice (a round applied over two of routing's
batches, the first committed), as after a broker's redelivery, never not at all. Ids are not in commit order
across workers on PostgreSQL, so there is no cursor: what is applied is deleted, and a row committed late
with a lower id is read at the next round.

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
from kuzet.central.routing.worker import Settle
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
    """On the routing leader: hands what ingest kept to ``handle(message, site)`` and behind it a ``Settle``
    (``settle``: routing's queue) that deletes the rows in the transaction that applies them; at once when
    ingest notifies (``url``: PostgreSQL's, to listen on), and every ``poll_s`` in any case. Each round tells
    ``behind`` how long ago the oldest row not yet applied reached central: how far routing is behind.

    The next round is read while routing applies the last (rows handed over and not yet deleted are left out),
    so that reading never waits on applying nor applying on reading; a round waits only while two before it
    are unsettled."""

    IN_FLIGHT = 2  # rounds handed over and not yet settled

    def __init__(
        self,
        central: Central,
        handle: Callable[[Envelope, str], None],
        settle: Callable[[Settle], None],
        poll_s: float,
        url: str | None = None,
        behind: Callable[[float], None] = lambda seconds: None,
    ):
        self.central, self._handle, self._settle, self.poll_s = central, handle, settle, poll_s
        self._behind = behind  # told, each round, how long ago its oldest row reached central
        self.applied = 0  # rows handed to routing and deleted since this leader started
        self._stop = threading.Event()
        self._woken = threading.Event()
        # Handed over, not yet settled: (row ids, the oldest row's received_at, set once settled).
        self._rounds: list[tuple[list[int], str, threading.Event]] = []
        self._lock = threading.Lock()
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
        if not self._room():
            return 0
        with self._lock:
            in_flight = [row_id for ids, _, _ in self._rounds for row_id in ids]
            waiting = [oldest for _, oldest, _ in self._rounds]
        skip = f"WHERE id NOT IN ({', '.join('?' * len(in_flight))}) " if in_flight else ""
        rows = portable.rows(
            self.central.db(),
            f"SELECT id, site, topic, payload, received_at FROM routing_inbox {skip}ORDER BY id LIMIT ?",
            [*in_flight, BATCH],
        )
        this_round = min((row["received_at"] for row in rows), default=None)
        oldest = min([*waiting, *([this_round] if this_round else [])], default=None)  # not yet applied
        self._behind(
            0.0 if oldest is None else (timeutil.utc_now() - timeutil.from_wire(oldest)).total_seconds()
        )
        if not rows:
            return 0
        for row in rows:
            try:
                message = messages.decode(row["topic"], bytes(row["payload"]))
            except InvalidMessage as exc:  # ingest decoded it; only a changed contract gets here
                log.error("routing inbox: %s no longer decodes (%s); dropped", row["topic"], exc.reason)
                continue
            self._handle(message, row["site"])
        ids, settled = [row["id"] for row in rows], threading.Event()
        with self._lock:
            self._rounds.append((ids, this_round, settled))
        self._settle(Settle(lambda db: _delete(db, ids), lambda ok: self._settled(ids, settled, ok)))
        return len(rows)

    def _settled(self, ids: list[int], settled: threading.Event, ok: bool) -> None:
        """On routing's thread, once the round's transaction committed (``ok``) or failed: its rows are deleted,
        or read again at a later round."""
        with self._lock:
            self._rounds = [entry for entry in self._rounds if entry[2] is not settled]
            if ok:
                self.applied += len(ids)
        settled.set()

    def _room(self) -> bool:
        """Wait while ``IN_FLIGHT`` rounds are unsettled; False if the reader stops meanwhile."""
        began = warned = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                if len(self._rounds) < self.IN_FLIGHT:
                    return True
                first = self._rounds[0][2]
            if not first.wait(0.5) and time.monotonic() - warned >= 10:
                warned = time.monotonic()
                log.warning("routing inbox: routing still applying after %.0f s", warned - began)
        return False


def _delete(db, ids: list[int]) -> None:
    """Inside routing's transaction: the rows it has just applied."""
    portable.execute(db, f"DELETE FROM routing_inbox WHERE id IN ({', '.join('?' * len(ids))})", ids)
