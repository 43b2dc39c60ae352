"""Routing's worker thread: a queue of device messages applied in batches, one transaction per batch (cut
after each urgent message: an event routing will route), messages to badges and live updates sent only after
that transaction commits, what a ``Settle`` queued behind the messages writes committed with them, and the
deadline timer.

The worker knows nothing of dispatches: ``apply(site, message)`` and ``expire(due_ids)`` are the
dispatcher's. Operator requests (web threads) take the same lock through ``transaction()``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kuzet.central.auth import audit
from kuzet.central.context import Central

log = logging.getLogger(__name__)

BATCH_MAX = 1000


@dataclass
class Outbox:
    """What a transaction sends to badges and shows on the page; delivered once it has committed."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)  # (MQTT topic, payload)
    live: list[tuple[str, dict]] = field(default_factory=list)  # (live hub channel, data)

    def send(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    def show(self, channel: str, data: dict) -> None:
        self.live.append((channel, data))


@dataclass(frozen=True)
class Settle:
    """Queued behind messages: ``write(db)`` runs in the transaction that applies them, so that what they did
    and ``write`` commit together (the routing inbox deletes its rows); ``done(settled)`` is called once that
    committed. A batch that fails is settled in a transaction of its own all the same, as its messages would
    fail again; ``done(False)`` only where that fails too (the store is away)."""

    write: Callable[[object], None]
    done: Callable[[bool], None]


class Deadlines:
    """dispatch_id -> time.monotonic() deadline (a "sent" dispatch's acknowledgement, a proposal's
    confirmation). A deadline set ``on_device`` (a badge's answer) is held while routing is behind what devices
    send (``behind``, at most ``MAX_HOLD_S``): an answer the badge sent in time may still be in central's own
    queues, and a dispatch taken back for central's lag would escalate to another unit for nothing."""

    MAX_HOLD_S = 300.0

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._on_device: set[str] = set()
        self.behind_s = 0.0

    def set(self, dispatch_id: str, in_s: float, on_device: bool = False) -> None:
        self._at[dispatch_id] = time.monotonic() + max(0.0, in_s)
        if on_device:
            self._on_device.add(dispatch_id)
        else:
            self._on_device.discard(dispatch_id)

    def clear(self, dispatch_id: str) -> None:
        self._at.pop(dispatch_id, None)
        self._on_device.discard(dispatch_id)

    def behind(self, seconds: float) -> None:
        """How late routing applies what devices send now (the routing inbox's oldest row, as it reads it)."""
        self.behind_s = min(max(seconds, 0.0), self.MAX_HOLD_S)

    def due(self) -> list[str]:
        now, held = time.monotonic(), self.behind_s
        return [d for d, at in self._at.items() if at + (held if d in self._on_device else 0.0) <= now]


class Worker:
    def __init__(
        self,
        central: Central,
        apply: Callable[[list[tuple[str, object]]], None],
        expire: Callable[[list[str]], None],
        urgent: Callable[[object], bool] = lambda message: False,
    ):
        self.central = central
        self.lock = threading.RLock()
        self.deadlines = Deadlines()
        self.outbox = Outbox()
        self._apply, self._expire, self._urgent = apply, expire, urgent
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._depth = 0  # transactions open on the thread holding the lock (nested ones join the outermost)

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="routing", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Apply what was already queued, then stop."""
        if self._thread is not None and self._thread.is_alive():
            self.drain(timeout_s=10)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, site: str, message: object) -> None:
        self._queue.put((site, message))

    def settle(self, settle: Settle) -> None:
        """Queue ``settle`` behind what was submitted so far."""
        self._queue.put(settle)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far has been applied; for tests and orderly shutdown."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def _next_batch(self) -> list:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._next_batch()
            work = [item for item in batch if isinstance(item, tuple)]
            settles = [item for item in batch if isinstance(item, Settle)]
            settled = self._apply_and_settle(work, settles)
            try:
                due = self.deadlines.due()
                if due:
                    with self.transaction():
                        self._expire(due)
            except Exception:  # a bug here must not stop routing for the whole city
                log.exception("routing: deadlines failed")
            for item in batch:
                if isinstance(item, Settle):
                    item.done(settled)
                elif isinstance(item, threading.Event):
                    item.set()

    def _apply_and_settle(self, work: list, settles: list[Settle]) -> bool:
        """Apply ``work`` a transaction per chunk, each cut after an urgent message (``urgent``: an event to
        route), so that what it sends leaves at its own commit rather than after the rest of the batch; the
        settles are written in the last. Returns whether they are committed."""
        *firsts, last = self._chunks(work)
        for chunk in firsts:
            self._in_transaction(chunk, [])
        if self._in_transaction(last, settles):
            return True
        # What failed would fail again: the settles are written all the same, in a transaction of their own.
        return not settles or self._in_transaction([], settles)

    def _chunks(self, work: list) -> list[list]:
        chunks: list[list] = [[]]
        for item in work:
            chunks[-1].append(item)
            if self._urgent(item[1]):
                chunks.append([])
        if not chunks[-1] and len(chunks) > 1:
            chunks.pop()  # the settles go with the last urgent message's chunk, not in one of their own
        return chunks

    def _in_transaction(self, work: list, settles: list[Settle]) -> bool:
        if not work and not settles:
            return True
        try:
            with self.transaction() as db:
                if work:
                    self._apply(work)
                for settle in settles:
                    settle.write(db)
            return True
        except Exception:  # a bug here must not stop routing for the whole city
            log.exception("routing: batch failed")
            return False

    @contextmanager
    def transaction(self) -> Iterator[object]:
        """One transaction on the thread's connection (nested calls join it); what it sends and shows goes out
        only once the outermost has committed, and nothing of it if it fails."""
        with self.lock:
            outermost = self._depth == 0
            if outermost:
                self.outbox = Outbox()
            self._depth += 1
            try:
                db = self.central.db()
                with audit.transaction(db):
                    yield db
            except BaseException:
                if outermost:
                    self.outbox = Outbox()
                raise
            finally:
                self._depth -= 1
            if outermost:
                self._deliver()

    def _deliver(self) -> None:
        outbox, self.outbox = self.outbox, Outbox()
        for topic, payload in outbox.messages:
            try:
                self.central.publish(topic, payload)
            except Exception as exc:  # the deadline will catch a dispatch that never left
                log.error("routing: cannot publish %s: %s", topic, exc)
        for channel, data in outbox.live:
            self.central.hub.publish(channel, data)
