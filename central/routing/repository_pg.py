"""Routing's storage on PostgreSQL: the statements of ``SqliteRoutingRepository``, run through a psycopg
connection, with what the dialects spell differently spelled here.

- Placeholders: the shared statements are written with ``?`` (none holds a literal question mark), turned into
  psycopg's ``%s`` once per statement and cached.
- Saving a unit is an upsert on its primary key (SQLite's ``insert or replace``); a run of units is one
  statement over arrays (``unnest``), not one upsert per unit.
- Nearest units: with PostGIS, a KNN walk of the GiST index on ``units.position`` (migration 0002), so the
  database reads only the nearest rows however many units a region has (once the table's statistics exist:
  autovacuum's ANALYZE; before it the planner may scan); without it, great-circle distance in plain SQL.
  ``nearest_method`` says which (``kuzet central store status`` shows it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from kuzet.central.routing.repository import _AVAILABLE, UNIT_COLUMNS, SqliteRoutingRepository, _unit_row
from kuzet.central.routing.units import Unit
from kuzet.shared.geo import EARTH_RADIUS_M

NEAREST_KNN = "postgis-knn"
NEAREST_SQL = "sql-distance"

_UNIT_TYPES = {"lat": "float8", "lon": "float8", "online": "int8"}  # the other columns are text
_SAVE_UNITS = (
    f"insert into units ({', '.join(UNIT_COLUMNS)}) select * from unnest("
    + ", ".join(f"%s::{_UNIT_TYPES.get(c, 'text')}[]" for c in UNIT_COLUMNS)
    + ") on conflict (device_id) do update set "
    + ", ".join(f"{c} = excluded.{c}" for c in UNIT_COLUMNS if c != "device_id")
)
# PostGIS: the index orders by distance (``<->``); ST_Distance on the sphere matches routing's haversine.
_POINT = "ST_SetSRID(ST_MakePoint(?, ?), 4326)::geography"
_NEAREST_KNN = (
    f"select device_id, ST_Distance(position, {_POINT}, false) from units "
    f"where {_AVAILABLE} and position is not null order by position <-> {_POINT} limit ?"
)
_HAVERSINE = (
    f"2 * {EARTH_RADIUS_M} * asin(least(1.0, sqrt(power(sin(radians(lat - ?) / 2), 2) "
    "+ cos(radians(?)) * cos(radians(lat)) * power(sin(radians(lon - ?) / 2), 2))))"
)
_NEAREST_SQL = (
    f"select device_id, d from (select device_id, {_HAVERSINE} as d from units "
    f"where {_AVAILABLE} and lat is not null and lon is not null) near order by d, device_id limit ?"
)


@functools.lru_cache(maxsize=512)
def _format_style(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresRoutingRepository(SqliteRoutingRepository):
    def __init__(self, connection: Callable, *, nearest_method: str):
        # ``connection``: gives the psycopg connection of the caller's transaction.
        super().__init__(connection)
        self.nearest_method = nearest_method

    def _run(self, sql: str, args: Iterable = ()):
        return self._db().execute(_format_style(sql), list(args))

    def save_units(self, units: Iterable[Unit]) -> None:
        """Each unit's row (its last, where one comes twice) in one statement over arrays."""
        rows = {unit.device_id: _unit_row(unit) for unit in units}
        if rows:
            self._db().execute(_SAVE_UNITS, [list(column) for column in zip(*rows.values(), strict=True)])

    def nearest_units(self, lat: float, lon: float, limit: int = 10) -> list[tuple[str, float]]:
        if self.nearest_method == NEAREST_KNN:
            rows = self._query(_NEAREST_KNN, [lon, lat, lon, lat, limit])
        else:
            rows = self._query(_NEAREST_SQL, [lat, lat, lon, limit])
        return [(row[0], float(row[1])) for row in rows]
