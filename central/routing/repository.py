"""Routing's storage: every SQL statement on ``dispatches``, ``dispatch_log`` and ``units`` (and routing's
reads of events and devices) behind one class, so that the rest of routing calls methods and never
holds SQL. ``SqliteRoutingRepository`` runs them on SQLite; ``PostgresRoutingRepository``
(``repository_pg.py``) runs the same statements on PostgreSQL, changing only what the two dialects spell
differently (placeholders, upsert, nearest units).

Plain SQL, not sqlite-utils' table helpers: these run for every dispatch state change, where per-call table
introspection would cost more than the write. Methods run on the calling thread's connection (``db`` is
``Central.db``), inside whatever transaction the caller holds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import sqlite_utils

from kuzet.central import alerts
from kuzet.central.alerts import Text
from kuzet.central.routing.geo import haversine_many_m
from kuzet.central.routing.lifecycle import UNDER_WAY
from kuzet.central.routing.units import Unit

DISPATCH_COLUMNS = (
    "dispatch_id",
    "event_id",
    "unit",
    "mode",
    "state",
    "created_at",
    "updated_at",
    "deadline_at",
    "distance_m",
    "created_by",
    "note",
    "reason",
    "attempt",
    "site",
    "direction_deg",
    "lat",
    "lon",
    "radius_m",
)
_SELECT = f"select {', '.join(DISPATCH_COLUMNS)} from dispatches"
_INSERT = f"insert into dispatches ({', '.join(DISPATCH_COLUMNS)}) values ({', '.join('?' * len(DISPATCH_COLUMNS))})"
LOG_COLUMNS = ("state", "at", "by", "detail", "detail_key", "detail_params")
UNIT_COLUMNS = (
    "device_id",
    "site",
    "callsign",
    "lat",
    "lon",
    "duty",
    "online",
    "position_at",
    "current_dispatch",
    "capabilities",
    "status_since",
)
_SAVE_UNIT = (
    f"insert or replace into units ({', '.join(UNIT_COLUMNS)}) values ({', '.join('?' * len(UNIT_COLUMNS))})"
)
# ``Unit.is_free`` in SQL: online, on duty as available, holding no dispatch.
_AVAILABLE = "online = 1 and duty = 'available' and current_dispatch is null"
_INCIDENT_COLUMNS = ("site", "event_type", "severity", "lat", "lon", "description", "label", "device")


def _unit_row(unit: Unit) -> list:
    row = unit.as_dict()
    row["online"] = int(unit.online)
    row["capabilities"] = json.dumps(unit.capabilities)
    return [row[c] for c in UNIT_COLUMNS]


class RoutingRepository(Protocol):
    """What routing needs from its storage; ``SqliteRoutingRepository`` is the one there is."""

    def insert_dispatch(self, row: dict) -> None: ...
    def update_dispatch(self, dispatch_id: str, fields: dict) -> None: ...
    def get_dispatch(self, dispatch_id: str) -> dict | None: ...
    def find_dispatches(self, **where) -> list[dict]: ...
    def log_state(self, dispatch_id: str, state: str, at: str, by: str, detail: Text | str) -> None: ...
    def history(self, dispatch_id: str) -> list[dict]: ...
    def save_unit(self, unit: Unit) -> None: ...
    def save_units(self, units: Iterable[Unit]) -> None: ...
    def load_units(self) -> list[Unit]: ...


def _in(column: str, values: Iterable[str]) -> tuple[str, list]:
    values = list(values)
    return f"{column} in ({', '.join('?' * len(values))})", values


class SqliteRoutingRepository:
    def __init__(self, db: sqlite_utils.Database | Callable[[], sqlite_utils.Database]):
        # ``db``: a Database, or ``Central.db`` (this thread's connection).
        self._db = db if callable(db) else (lambda: db)

    # What the PostgreSQL repository spells differently.
    def _run(self, sql: str, args: Iterable = ()):
        """Every statement goes through here: a cursor with ``fetchone``/``fetchall``."""
        return self._db().execute(sql, list(args))

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        return self._run(sql, args).fetchall()

    # --- dispatches -----------------------------------------------------------------------------------

    def insert_dispatch(self, row: dict) -> None:
        self._run(_INSERT, [row.get(c) for c in DISPATCH_COLUMNS])

    def update_dispatch(self, dispatch_id: str, fields: dict) -> None:
        names = [name for name in fields if name in DISPATCH_COLUMNS]
        self._run(
            f"update dispatches set {', '.join(f'{n} = ?' for n in names)} where dispatch_id = ?",
            [fields[n] for n in names] + [dispatch_id],
        )

    def get_dispatch(self, dispatch_id: str) -> dict | None:
        row = self._run(f"{_SELECT} where dispatch_id = ?", [dispatch_id]).fetchone()
        return dict(zip(DISPATCH_COLUMNS, row, strict=True)) if row else None

    def find_dispatches(
        self,
        *,
        states: Iterable[str] | None = None,
        event_id: str | None = None,
        unit: str | None = None,
        not_id: str | None = None,
        limit: int = 200,
    ) -> list[dict]:
        """Newest first; each keyword that is given narrows the search."""
        where, args = [], []
        if states is not None:
            clause, values = _in("state", states)
            where.append(clause)
            args += values
        for column, value in (("event_id", event_id), ("unit", unit)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if not_id is not None:
            where.append("dispatch_id != ?")
            args.append(not_id)
        sql = f"{_SELECT} {'where ' + ' and '.join(where) if where else ''} order by created_at desc limit ?"
        return [dict(zip(DISPATCH_COLUMNS, r, strict=True)) for r in self._query(sql, [*args, limit])]

    def active(self, limit: int = 1000) -> list[dict]:
        """Dispatches under way or awaiting confirmation, with the place each unit is sent to: for the map."""
        return self.find_dispatches(states=UNDER_WAY, limit=limit)

    def routed_or_closed(self, event_id: str) -> bool:
        """Whether the event already has a dispatch or is closed: one round trip for routing's first look."""
        sql = (
            "select exists (select 1 from dispatches where event_id = ?)"
            " or exists (select 1 from events where event_id = ? and status = 'closed')"
        )
        return bool(self._query(sql, [event_id, event_id])[0][0])

    def units_sent_to(self, event_id: str) -> list[str]:
        return [r[0] for r in self._query("select unit from dispatches where event_id = ?", [event_id])]

    def deadlines(self, states: Iterable[str]) -> list[tuple[str, str]]:
        """(dispatch_id, deadline_at) of dispatches in ``states`` that have a deadline."""
        clause, values = _in("state", states)
        sql = f"select dispatch_id, deadline_at from dispatches where {clause} and deadline_at is not null"
        return [(r[0], r[1]) for r in self._query(sql, values)]

    def left_behind(self, limit: int = 1000) -> list[dict]:
        """Dispatches still under way to a revoked device or to a closed event (left by a change made while
        routing was not running)."""
        clause, values = _in("state", UNDER_WAY)
        sql = (
            f"{_SELECT} where {clause} and (unit in (select device_id from devices where revoked_at is not null)"
            " or exists (select 1 from events e where e.event_id = dispatches.event_id and e.status = 'closed'))"
            " order by created_at desc limit ?"
        )
        return [dict(zip(DISPATCH_COLUMNS, r, strict=True)) for r in self._query(sql, [*values, limit])]

    # --- dispatch_log ---------------------------------------------------------------------------------

    def log_state(self, dispatch_id: str, state: str, at: str, by: str, detail: Text | str) -> None:
        english, key, params = alerts.stored_columns(detail)
        self._run(
            "insert into dispatch_log (dispatch_id, state, at, by, detail, detail_key, detail_params)"
            " values (?, ?, ?, ?, ?, ?, ?)",
            [dispatch_id, state, at, by, english, key, params],
        )

    def history(self, dispatch_id: str) -> list[dict]:
        rows = self._query(
            "select state, at, by, detail, detail_key, detail_params from dispatch_log where dispatch_id = ?"
            " order by id",
            [dispatch_id],
        )
        return [alerts.parsed_params(dict(zip(LOG_COLUMNS, r, strict=True)), "detail_params") for r in rows]

    # --- units ----------------------------------------------------------------------------------------

    def save_unit(self, unit: Unit) -> None:
        self.save_units([unit])

    def save_units(self, units: Iterable[Unit]) -> None:
        """Upsert each unit's row, in one statement however many (a run of badges' reports)."""
        rows = [_unit_row(unit) for unit in units]
        if rows:
            db = self._db()  # a sqlite_utils Database, or the sqlite3 connection of a store's transaction
            getattr(db, "conn", db).executemany(_SAVE_UNIT, rows)

    def load_units(self) -> list[Unit]:
        return [
            Unit(
                device_id=row[0],
                site=row[1] or "",
                callsign=row[2] or "",
                lat=row[3],
                lon=row[4],
                duty=row[5] or "off_duty",
                online=bool(row[6]),
                position_at=row[7],
                current_dispatch=row[8],
                capabilities=json.loads(row[9] or "[]"),
                status_since=row[10],
            )
            for row in self._query(f"select {', '.join(UNIT_COLUMNS)} from units")
        ]

    # --- what routing reads of the other parts' tables ------------------------------------------------

    def revoked(self) -> set[str]:
        """Devices revoked in the registry: never sent anywhere, whatever they last reported."""
        return {r[0] for r in self._query("select device_id from devices where revoked_at is not null")}

    def is_revoked(self, device: str) -> bool:
        sql = "select 1 from devices where device_id = ? and revoked_at is not null"
        return bool(self._query(sql, [device]))

    def device_position(self, device: str) -> tuple[float, float] | None:
        row = self._run("select lat, lon from devices where device_id = ?", [device]).fetchone()
        if row is None or row[0] is None or row[1] is None:
            return None
        return row[0], row[1]

    def event_status(self, event_id: str) -> tuple[str | None, str | None]:
        """(status, closed_note) of an event; (None, None) if there is none."""
        row = self._run("select status, closed_note from events where event_id = ?", [event_id]).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def event_for_incident(self, event_id: str) -> dict | None:
        """The columns of an event routing builds an incident from, with its ``direction_deg`` attribute."""
        row = self._run(
            f"select {', '.join(_INCIDENT_COLUMNS)}, attributes from events where event_id = ?",
            [event_id],
        ).fetchone()
        if row is None:
            return None
        event = dict(zip(_INCIDENT_COLUMNS, row[:-1], strict=True))
        event["direction_deg"] = json.loads(row[-1] or "{}").get("direction_deg")
        return event

    def new_events_never_dispatched(self, since: str) -> list[tuple[str, str, str]]:
        """(event_id, event_type, severity) of events still "new", received since ``since``, never routed."""
        return self._query(
            "select event_id, event_type, severity from events where status = 'new' and received_at >= ? "
            "and event_id not in (select event_id from dispatches where event_id is not null)",
            [since],
        )

    # --- nearest units --------------------------------------------------------------------------------

    def nearest_units(self, lat: float, lon: float, limit: int = 10) -> list[tuple[str, float]]:
        """(device_id, metres) of the ``limit`` available units nearest to a point, nearest first: the
        database's own answer, for a region with more units than routing keeps in memory comfortably."""
        rows = self._query(
            f"select device_id, lat, lon from units where {_AVAILABLE} and lat is not null and lon is not null"
        )
        if not rows:
            return []
        lats = np.array([r[1] for r in rows], dtype=float)
        lons = np.array([r[2] for r in rows], dtype=float)
        metres = haversine_many_m(lat, lon, lats, lons)
        order = np.argsort(metres, kind="stable")[:limit]
        return [(rows[i][0], float(metres[i])) for i in order]
