"""A web worker's way to routing when routing runs in the leader's process (``kuzet central run --role``).

``RemoteRouting`` stands where a web worker would otherwise hold the running ``RoutingService``
(``Operations.routing``, the dispatch API): each call is written to ``routing_requests`` in the store and
waited for; the leader's ``RequestServer`` takes it, carries it out on its routing (the same methods, the
same checks, the same audit) and writes the answer. Routing's refusals come back as the same
``RoutingError`` with its HTTP status. Nothing is carried out twice or behind the operator's back: the
leader takes a request (``taken_at``) before carrying it out, and a web worker that gives up on a request
nobody took deletes it first, so that a leader elected later does not carry out what the operator was told
had failed.

Polling the store rather than a connection between processes: it runs on either store, the leader needs no
address of its own, and a request written during a change of leader is served by the next one."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

from kuzet.central.context import Central
from kuzet.central.operations import NotRunning
from kuzet.central.store import portable
from kuzet.shared import timeutil

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0  # how long a web worker waits for a leader to take its request, and again for the answer
WAIT_S = 0.02  # how often the web worker looks for the answer
SERVE_S = 0.05  # how often the leader looks for requests
KEEP_S = 300  # requests older than this are deleted (their web worker is gone)

# What a web worker may ask of routing (RoutingService's methods); "units" is ``units.all()`` as dicts.
METHODS = frozenset(
    {
        "confirm",
        "assign",
        "send_nearest",
        "divert",
        "cancel",
        "reassign",
        "intercept",
        "intercept_preview",
        "edit_unit",
        "close_event",
        "revoke",
        "unit_board",
        "dispatch",
        "dispatches",
        "waiting",
        "recommend",
        "units",
    }
)


class _Unit(dict):
    def as_dict(self) -> dict:
        return dict(self)


class _Units:
    def __init__(self, remote: RemoteRouting):
        self._remote = remote

    def all(self) -> list[_Unit]:
        return [_Unit(unit) for unit in self._remote.call("units")]


class RemoteRouting:
    def __init__(self, central: Central, timeout_s: float = TIMEOUT_S):
        self.central, self.timeout_s = central, timeout_s
        self.units = _Units(self)

    def __getattr__(self, name: str):
        if name not in METHODS:
            raise AttributeError(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    def call(self, method: str, *args, **kwargs):
        db = self.central.db()
        arguments = json.dumps({"args": args, "kwargs": kwargs}, default=str)
        site = self.central.config.central.site
        request_id = _write(
            db,
            "INSERT INTO routing_requests (site, method, arguments, created_at) VALUES (?, ?, ?, ?) RETURNING id",
            [site, method, arguments, timeutil.now_wire()],
        )
        try:
            answer = self._wait(db, request_id)
            if answer is None and _withdrawn(db, request_id):
                raise NotRunning(f"routing's leader did not take the request within {self.timeout_s:.0f} s")
            answer = answer or self._wait(db, request_id)
            if answer is None:
                raise NotRunning("routing's leader took the request but did not answer: look before retrying")
        finally:
            _write(db, "DELETE FROM routing_requests WHERE id = ? AND taken_at IS NOT NULL", [request_id])
        status, body = answer
        if status != 200:
            from kuzet.central.routing.service import RoutingError

            raise RoutingError(body["error"], status)
        return body

    def _wait(self, db, request_id: int) -> tuple[int, object] | None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            row = portable.row(db, "SELECT status, answer FROM routing_requests WHERE id = ?", [request_id])
            if row and row["status"] is not None:
                return row["status"], json.loads(row["answer"])
            time.sleep(WAIT_S)
        return None


def _withdrawn(db, request_id: int) -> bool:
    """Delete a request no leader has taken; False if one took it meanwhile."""
    return _write(db, "DELETE FROM routing_requests WHERE id = ? AND taken_at IS NULL", [request_id]) == 1


def _write(db, sql: str, params: list) -> int:
    """One statement in its own transaction; the id it returns (RETURNING), else the rows it changed."""
    with portable.transaction(db):
        cursor = portable.execute(db, sql, params)
        return cursor.fetchone()[0] if "RETURNING" in sql else cursor.rowcount


class RequestServer:
    """On the routing leader: carries out the web workers' requests on ``routing``, oldest first."""

    def __init__(self, central: Central, routing):
        self.central, self.routing = central, routing
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routing-requests", daemon=True)

    def start(self) -> RequestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        next_cleanup = 0.0
        while not self._stop.wait(SERVE_S):
            try:
                self.run_once()
                if time.monotonic() >= next_cleanup:
                    next_cleanup = time.monotonic() + 60
                    self._cleanup()
            except Exception:  # the store's trouble: the requests wait; their web workers time out
                log.exception("routing requests: reading failed")

    def run_once(self) -> int:
        db = self.central.db()
        site = self.central.config.central.site
        pending = portable.rows(
            db,
            "SELECT id, method, arguments FROM routing_requests WHERE site = ? AND taken_at IS NULL ORDER BY id",
            [site],
        )
        for request in pending:
            taken = _write(
                db,
                "UPDATE routing_requests SET taken_at = ? WHERE id = ? AND taken_at IS NULL",
                [timeutil.now_wire(), request["id"]],
            )
            if taken != 1:
                continue  # withdrawn by its web worker meanwhile
            status, answer = self._carry_out(request["method"], json.loads(request["arguments"]))
            _write(
                db,
                "UPDATE routing_requests SET status = ?, answer = ? WHERE id = ?",
                [status, json.dumps(answer, default=str), request["id"]],
            )
            self.served += 1
        return len(pending)

    def _carry_out(self, method: str, arguments: dict) -> tuple[int, object]:
        from kuzet.central.routing.service import RoutingError

        if method not in METHODS:
            return 400, {"error": f"routing has no request {method!r}"}
        try:
            if method == "units":
                return 200, [unit.as_dict() for unit in self.routing.units.all()]
            return 200, getattr(self.routing, method)(*arguments["args"], **arguments["kwargs"])
        except RoutingError as error:
            return error.status, {"error": str(error)}
        except Exception as error:  # a bug here must not end the leader; the operator is told
            log.exception("routing requests: %s failed", method)
            return 500, {"error": f"routing failed: {error}"}

    def _cleanup(self) -> None:
        oldest = timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=KEEP_S))
        _write(self.central.db(), "DELETE FROM routing_requests WHERE created_at < ?", [oldest])
