"""One active leader per site among several central processes (routing's deadlines and escalations must run
in exactly one), elected through PostgreSQL: the leader holds a session-level advisory lock on a connection
of its own; a standby tries for it every ``poll_s``. When the leader dies (even by SIGKILL) the server ends
its session and frees the lock as soon as it sees the connection closed, and a standby takes over at its next
try. A leader that loses its connection stops leading at once (``on_lost``) rather than risk two leaders.

Routing keeps its deadlines in the store (``dispatches.deadline_at``), so a new leader picks them up from
there; nothing a leader knows lives only in its memory."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)


# A killed process's connection is closed by its kernel and the lock freed at once; a leader's host that
# dies or is cut off closes nothing. The server probes an idle session (its keepalives, set per session) and
# ends it, freeing the lock, after about 5 + 3 x 2 = 11 s; the leader's side gives up a statement the server
# does not acknowledge within 10 s and steps down, so two leaders overlap for about a second at most.
_SERVER_KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}
_DEAD_PEER = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms
}


def lock_key(role: str, site: str) -> int:
    """A stable signed 64-bit advisory lock key for (role, site)."""
    digest = hashlib.sha256(f"kuzet-leader:{role}:{site}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    def __init__(
        self,
        url: str,
        role: str,
        site: str,
        *,
        poll_s: float = 1.0,
        on_elected: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
    ):
        self.url, self.key, self.poll_s = url, lock_key(role, site), poll_s
        self.on_elected, self.on_lost = on_elected, on_lost
        self.leading = threading.Event()
        self.elected_at: float | None = None  # time.monotonic() when this process last became leader
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"leader-{role}", daemon=True)

    def start(self) -> Leadership:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Step down (the lock goes with the connection) and stop trying."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5, **_DEAD_PEER) as conn:
                    for setting, value in _SERVER_KEEPALIVES.items():
                        conn.execute(f"SET {setting} = {value}")
                    self._campaign(conn)
            except psycopg.Error as exc:
                log.warning("leadership: the store is unreachable (%s)", exc)
            self._step_down()
            self._stop.wait(self.poll_s)

    def _campaign(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            if not self.leading.is_set():
                if conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()[0]:
                    self.leading.set()
                    self.elected_at = time.monotonic()
                    log.info("leadership: this process leads now")
                    try:
                        self.on_elected()
                    except Exception:  # it could not take up the work: another process may
                        log.exception("leadership: starting to lead failed; stepping down")
                        self._step_down()
                        conn.execute("SELECT pg_advisory_unlock(%s)", [self.key])
            else:
                conn.execute("SELECT 1")  # still connected, so the lock is still ours
            self._stop.wait(self.poll_s)

    def _step_down(self) -> None:
        if self.leading.is_set():
            self.leading.clear()
            log.warning("leadership: this process no longer leads")
            self.on_lost()
