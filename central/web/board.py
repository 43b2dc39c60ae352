"""The triage board's open incidents, folded once and kept current per change instead of re-read by every
page on every event.

The fold (``central.store.incidents``) groups events by (camera, zone, type), so a changed event can only
change its own group: the live hub tells the board which events changed (``LiveHub.listen``: ingest, the one
door and routing publish every change of an event, and another central process's changes arrive through the
relay), the board notes their groups, and the next read or push re-folds those groups alone with one small
query each. What changes behind the hub's back (retention deleting old events, a script writing the store)
is caught by a full re-fold every ``RESYNC_S``, compared with what the board held, so that only real
differences go out.

A running web server also pushes each change to the open boards (``start``): one ``incidents`` update per
round on the hub with the changed groups' incidents as the page shows them, computed once for every page;
pages re-read ``GET /api/v1/incidents`` only when their stream (re)connects. ``version`` orders the two: an
update older than the list a page has read is stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pydantic_core import to_json

from kuzet.central.context import Central
from kuzet.central.live import Update
from kuzet.central.store import incidents, portable

log = logging.getLogger(__name__)

RESYNC_S = 60.0
PUSH_EVERY_S = 0.1  # the changes of this long go out as one push (a burst re-folds a group once)
Key = tuple[str, str, str]  # (device, zone or "", event_type)


def _key(row: dict) -> Key:
    return (row["device"], row.get("zone") or "", row["event_type"])


def _order(incident: dict) -> tuple:
    """Most severe first; among equals, who has waited longest (an answered incident after the waiting ones);
    the incident's id last, so that the page sorts merged updates the same way (incidents.js, order)."""
    waiting = incident["waiting_since"]
    return (
        -incident["severity_rank"],
        waiting is None,
        waiting or incident["first_at"],
        incident["incident_id"],
    )


class IncidentBoard:
    def __init__(self, central: Central):
        self._central = central
        self._lock = threading.Lock()
        self._groups: dict[Key, list[dict]] | None = None  # None until the first read
        self._where: dict[str, Key] = {}  # each open event's group
        self._listening = False
        self._notes = threading.Lock()  # guards the three sets of what changed
        self._dirty: set[Key] = set()
        self._dirty_devices: set[str] = set()
        self._unplaced: set[str] = set()  # changed events whose group is to be read
        self._unpushed: set[Key] = set()
        self._folded_at = 0.0
        self._version = 0
        self._ordered: tuple[int, list[dict]] | None = None  # (version, every incident, in order)
        # The listing as sent, per filter, for the current version: pages opening together (a shift's start,
        # central restarted, the network back) all read the same list, encoded once.
        self._bodies: tuple[int, dict[tuple, bytes]] = (-1, {})
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pusher: threading.Thread | None = None

    @property
    def window_s(self) -> float:
        return self._central.config.triage.window_s

    # --- reading ------------------------------------------------------------------------------------------

    def listing(self, filters: dict[str, str]) -> tuple[list[dict], int]:
        """(the open incidents in order, as JSON rows; version); ``filters`` by type, device, zone, status."""
        with self._lock:
            self._sync()
            version, ordered = self._in_order()
        wanted = {key: value for key, value in filters.items() if value}
        if wanted:
            ordered = [incident for incident in ordered if _matches(incident, wanted)]
        return ordered, version

    def listing_json(self, filters: dict[str, str], limit: int) -> bytes:
        """``GET /api/v1/incidents``'s body: the first ``limit`` of ``listing(filters)``, with their total,
        the grouping window and the version the board's pushes continue from."""
        found, version = self.listing(filters)
        key = (tuple(sorted((k, v) for k, v in filters.items() if v)), limit)
        with self._notes:
            kept_version, bodies = self._bodies
            if kept_version == version and key in bodies:
                return bodies[key]
        body = to_json(
            {
                "incidents": found[:limit],
                "total": len(found),
                "window_s": self.window_s,
                "version": version,
                "limit": limit,
            }
        )
        with self._notes:
            if version > self._bodies[0]:
                self._bodies = (version, {})
            if version == self._bodies[0]:  # not when the board has moved on meanwhile
                self._bodies[1][key] = body
        return body

    def _in_order(self) -> tuple[int, list[dict]]:
        if self._ordered is None or self._ordered[0] != self._version:
            every = [incident for group in self._groups.values() for incident in group]
            self._ordered = (self._version, sorted(every, key=_order))
        return self._ordered

    # --- keeping current ----------------------------------------------------------------------------------

    def _changed(self, update: Update) -> None:
        """Called by the hub on the publisher's thread for every update: notes what to re-fold and returns (the
        notes have a lock of their own, never held while the board reads the store)."""
        data = update.data
        if self._groups is None:
            return  # nothing folded yet: the first read folds everything
        if update.channel in ("event", "dispatch") and data.get("event_id"):
            before = self._where.get(data["event_id"])  # its group before the change, should that differ
            with self._notes:
                if "device" in data and "event_type" in data:
                    self._dirty.add(_key(data))
                else:
                    self._unplaced.add(data["event_id"])
                if before is not None:
                    self._dirty.add(before)
        elif update.channel == "device" and data.get("device_id"):  # its name and place are on its incidents
            with self._notes:
                self._dirty_devices.add(data["device_id"])
        else:
            return
        self._wake.set()

    def _sync(self) -> None:
        """Bring the board up to date (under the lock): a full fold on first use and every ``RESYNC_S``, the
        changed groups alone otherwise."""
        db = self._central.db()
        with self._notes:
            dirty, devices, unplaced = self._dirty, self._dirty_devices, self._unplaced
            self._dirty, self._dirty_devices, self._unplaced = set(), set(), set()
        if self._groups is None:
            if not self._listening:  # before the fold: a change meanwhile is re-folded after
                self._central.hub.listen(self._changed)
                self._listening = True
            folded = self._fold(db, {})  # should it fail, the next read folds again
            self._groups, self._where = {}, {}
            self._replace(folded, set())
            self._unpushed.clear()  # no page has been sent anything yet
            return
        if time.monotonic() - self._folded_at >= RESYNC_S:
            self._replace(self._fold(db, {}), set(self._groups))
            return
        dirty |= {key for key in self._groups if key[0] in devices}
        ids = list(unplaced)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = portable.rows(
                db, f"SELECT device, zone, event_type FROM events WHERE event_id IN ({marks})", chunk
            )
            dirty.update(_key(row) for row in rows)
        for key in dirty:
            device, zone, event_type = key
            found = self._fold(db, {"device": device, "zone": zone, "type": event_type})
            self._replace({key: found.get(key, [])}, {key})

    def _fold(self, db, filters: dict[str, str]) -> dict[Key, list[dict]]:
        """The open incidents by group (``filters``: one group's device, zone and type)."""
        if not filters:
            self._folded_at = time.monotonic()
        groups: dict[Key, list[dict]] = {}
        for incident in incidents.open_incidents(db, self.window_s, filters=filters):
            row = incident.as_json()
            groups.setdefault(_key(row), []).append(row)
        return groups

    def _replace(self, folded: dict[Key, list[dict]], keys: set[Key]) -> None:
        """Put ``folded`` in place of the groups ``keys`` (and the groups ``folded`` holds), noting the ones
        that differ for the next push."""
        changed = set()
        for key in keys | set(folded):
            before, after = self._groups.get(key, []), folded.get(key, [])
            if before == after:
                continue
            changed.add(key)
            for incident in before:
                for event_id in incident["event_ids"]:
                    self._where.pop(event_id, None)
            for incident in after:
                for event_id in incident["event_ids"]:
                    self._where[event_id] = key
            if after:
                self._groups[key] = after
            else:
                self._groups.pop(key, None)
        if changed:
            self._version += 1
            self._unpushed |= changed

    # --- pushing to the open pages ------------------------------------------------------------------------

    def start(self) -> IncidentBoard:
        self._pusher = threading.Thread(target=self._push_loop, name="kuzet-board", daemon=True)
        self._pusher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._pusher is not None:
            self._pusher.join(timeout=5)
        self._central.hub.unlisten(self._changed)

    def _push_loop(self) -> None:
        try:  # folded before the first page asks, not while the first pages of a shift wait on it
            with self._lock:
                self._sync()
        except Exception:
            log.exception("board: folding the open incidents failed; the first read tries again")
        while not self._stop.is_set():
            self._wake.wait(timeout=RESYNC_S)
            if self._stop.wait(PUSH_EVERY_S):
                return
            self._wake.clear()
            try:
                self.push_once()
            except Exception:  # the pages miss this round; the next change or resync brings them current
                log.exception("board: bringing the open incidents up to date failed")

    def push_once(self) -> dict | None:
        """Bring the board up to date and deliver what changed since the last push to this process's pages
        (each process keeps its own board: nothing is relayed); the update, or None if nothing changed."""
        with self._lock:
            if self._groups is None:
                return None
            self._sync()
            if not self._unpushed:
                return None
            keys, self._unpushed = self._unpushed, set()
            update = {
                "version": self._version,
                "total": sum(len(group) for group in self._groups.values()),
                "groups": [
                    {"device": d, "zone": z, "event_type": t, "incidents": self._groups.get((d, z, t), [])}
                    for d, z, t in sorted(keys)
                ],
            }
        self._central.hub.deliver("incidents", update)
        return update


def _matches(incident: dict, wanted: dict[str, str]) -> bool:
    fields: dict[str, Callable[[dict], str]] = {
        "type": lambda i: i["event_type"],
        "device": lambda i: i["device"],
        "zone": lambda i: i["zone"] or "",
        "status": lambda i: i["status"],
    }
    return all(fields[key](incident) == value for key, value in wanted.items())
