"""Routing's storage on PostgreSQL: the statements of ``SqliteRoutingRepository``, run through a psycopg
connection, with what the dialects spell differently spelled here.

- Placeholders: the shared statements are written with ``?`` (none holds a literal question mark), turned into
  psycopg's ``%s`` once per statement and cached.
- Saving a unit is an upsert on its primary key (SQLite's ``insert or replace``).
- Nearest units: with PostGIS, a KNN walk of the GiST index on ``units.position`` (migration 0002), so the
  database reads only the nearest rows however many units a region has (once the table's statistics exist:
  autovacuum's ANALYZE; before it the planner may scan); without it, great-circle distance in plain SQL.
  ``nearest_method`` says which (``kuzet central store status`` shows it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from kuzet.central.routing.repository import _AVAILABLE, UNIT_COLUMNS, SqliteRoutingRepository
from kuzet.shared.geo import EARTH_RADIUS_M

NEAREST_KNN = "postgis-knn"
NEAREST_SQL = "sql-distance"

_SAVE_UNIT = (
    f"insert into units ({', '.join(UNIT_COLUMNS)}) values ({', '.join('?' * len(UNIT_COLUMNS))}) "
    "on conflict (device_id) do update set "
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
    _save_unit_sql = _SAVE_UNIT

    def __init__(self, connection: Callable, *, nearest_method: str):
        # ``connection``: gives the psycopg connection of the caller's transaction.
        super().__init__(connection)
        self.nearest_method = nearest_method

    def _run(self, sql: str, args: Iterable = ()):
        return self._db().execute(_format_style(sql), list(args))

    def _run_many(self, sql: str, rows: list[list]) -> None:
        if rows:  # psycopg pipelines the rows: one round trip, not one per row
            self._db().cursor().executemany(_format_style(sql), rows)

    def nearest_units(self, lat: float, lon: float, limit: int = 10) -> list[tuple[str, float]]:
        if self.nearest_method == NEAREST_KNN:
            rows = self._query(_NEAREST_KNN, [lon, lat, lon, lat, limit])
        else:
            rows = self._query(_NEAREST_SQL, [lat, lat, lon, limit])
        return [(row[0], float(row[1])) for row in rows]
