"""The store on both backends (SQLite, PostgreSQL), through the same face: versioned migrations, the events
repository (idempotent, newest seq wins, operators' columns untouched), routing's repository with nearest
units, and on PostgreSQL the monthly partitions that retention drops while keeping held events.

The PostgreSQL side runs on a throw-away cluster (``postgres_cluster`` in conftest.py), one fresh database a
test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.ingest import SITE, event, new_id

from kuzet.central.config import StoreSection
from kuzet.central.ingest import snapshots
from kuzet.central.routing.geo import haversine_m
from kuzet.central.routing.units import Unit
from kuzet.central.store import migrate
from kuzet.central.store.backend import open_store
from kuzet.central.store.media import media_row

AT = "2026-11-21T10:00:00.000Z"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = open_store(StoreSection(), tmp_path)
    else:
        opened = open_store(StoreSection(url=request.getfixturevalue("postgres_url")), tmp_path)
    yield opened
    opened.close()


def sql(store, statement: str) -> str:
    """A test's own SQL with ``?`` placeholders, in the backend's style."""
    return statement if store.backend == "sqlite" else statement.replace("?", "%s")


def received(message, at: str = AT):
    from kuzet.central.store.events import Received

    return Received(message, SITE, at)


def test_migrations_bring_a_new_database_to_the_newest_version_once(store):
    newest = len(migrate.available(store.backend))
    assert store.describe()["schema_version"] == newest
    with store.transaction() as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
    assert names == [m.name for m in migrate.available(store.backend)]
    # A second central starting against the same database applies nothing.
    store.close()
    if store.backend == "sqlite":
        reopened = type(store)(store.path).open()
        assert migrate.migrate_sqlite(reopened.db().conn) == []
    else:
        reopened = type(store)(store.url).open()
        with reopened.pool.connection() as conn:
            conn.autocommit = True
            assert migrate.migrate_postgresql(conn) == []
    assert reopened.describe()["schema_version"] == newest
    reopened.close()


def test_a_batch_with_repeats_and_late_states_is_stored_once(store):
    event_id = new_id()
    first, third = event("cam-1", event_id, 1), event("cam-1", event_id, 3, "update", label="third")
    batch = [
        received(first),
        received(third),
        received(event("cam-1", event_id, 2, "update")),
        received(third),
    ]
    with store.transaction() as conn:
        applied = store.events.apply(conn, batch)
    assert applied.new_event_ids == [event_id]
    assert (applied.duplicates, applied.timeline_only) == (1, 1)
    assert [r.message.id for r in applied.changed] == [third.id]
    with store.transaction() as conn:
        [row] = store.events.rows(conn, [event_id])
        seqs = [r[0] for r in conn.execute("SELECT seq FROM event_updates ORDER BY seq").fetchall()]
    assert (row["seq"], row["label"], row["edge_state"]) == (3, "third", "update")
    assert seqs == [1, 2, 3]
    # The whole batch again (a device re-sending its outbox, a redelivery to another worker): nothing changes.
    with store.transaction() as conn:
        again = store.events.apply(conn, batch)
        assert conn.execute("SELECT count(*) FROM event_updates").fetchone()[0] == 3
    assert (again.duplicates, again.changed, again.new_event_ids) == (4, [], [])


def test_updates_keep_media_links_and_the_operators_columns(store):
    event_id, clip_id = new_id(), new_id()
    with store.transaction() as conn:
        store.events.apply(
            conn, [received(event("cam-1", event_id, 0, snapshot_sha256="a" * 64, clip_id=clip_id))]
        )
        conn.execute(
            sql(
                store,
                "UPDATE events SET status = 'assigned', assigned_to = 'unit-7', hold = 1 WHERE event_id = ?",
            ),
            [event_id],
        )
    with store.transaction() as conn:
        store.events.apply(
            conn, [received(event("cam-1", event_id, 1, "closed"), at="2026-11-21T10:05:00.000Z")]
        )
        [row] = store.events.rows(conn, [event_id])
    assert row["edge_state"] == "closed"
    assert (row["snapshot_sha256"], row["clip_id"]) == ("a" * 64, clip_id)
    assert (row["status"], row["assigned_to"], row["hold"]) == ("assigned", "unit-7", True)
    assert (row["received_at"], row["updated_at"]) == (AT, "2026-11-21T10:05:00.000Z")


def test_created_rows_are_the_rows_read_back(store):
    """Ingest announces a new event from the row it inserted: it must be the stored row, column for column."""
    from kuzet.shared import messages

    rich = event(
        "cam-2",
        new_id(),
        0,
        zone="gate",
        attributes={"direction_deg": 91.5},
        frame_size=(768, 576),
        location=messages.GeoPoint(lat=52.28, lon=76.96),
        track_ids=[3, 4],
    )
    with store.transaction() as conn:
        applied = store.events.apply(conn, [received(rich)])
    with store.transaction() as conn:
        [read_back] = store.events.rows(conn, [rich.event_id])
        # A batch's snapshots: the event shows its own device's, never another's naming it.
        snapshot = {"event_id": rich.event_id, "content_type": "image/jpeg", "width": 768, "height": 576}
        snapshots.record(conn, [media_row("b" * 64, 10, "snapshot", device="cam-2", **snapshot),
                                media_row("c" * 64, 10, "snapshot", device="cam-9", **snapshot)])  # fmt: skip
        [shown] = store.events.rows(conn, [rich.event_id])
    assert applied.created_rows[rich.event_id] == read_back
    assert shown["snapshot_sha256"] == "b" * 64


def test_routing_repository_round_trip(store):
    with store.transaction() as conn:
        repo = store.routing_repository(conn)
        repo.insert_dispatch(
            {
                "dispatch_id": "d1",
                "event_id": "e1",
                "unit": "b1",
                "state": "offered",
                "created_at": AT,
                "attempt": 1,
            }
        )
        repo.update_dispatch("d1", {"state": "accepted", "updated_at": AT, "not_a_column": 1})
        repo.log_state("d1", "offered", AT, "routing", "")
        repo.log_state("d1", "accepted", AT, "b1", "on my way")
        repo.save_unit(
            Unit("b1", site=SITE, callsign="Alpha", lat=52.0, lon=76.0, online=True, capabilities=["k9"])
        )
        repo.save_unit(Unit("b1", site=SITE, callsign="Alpha-2", lat=52.1, lon=76.0))  # replaces
        # A run of reports: each unit once, as the last says (on PostgreSQL one statement over arrays).
        repo.save_units([Unit("b2", site=SITE, callsign="Bravo"), Unit("b2", site=SITE, callsign="Bravo-2")])
    with store.transaction() as conn:
        repo = store.routing_repository(conn)
        assert repo.get_dispatch("d1")["state"] == "accepted"
        assert [d["dispatch_id"] for d in repo.find_dispatches(states=["accepted"], unit="b1")] == ["d1"]
        assert repo.find_dispatches(states=["offered"]) == []
        assert [h["state"] for h in repo.history("d1")] == ["offered", "accepted"]
        unit, bravo = sorted(repo.load_units(), key=lambda u: u.device_id)
    assert (unit.callsign, unit.lat, unit.online, unit.capabilities) == ("Alpha-2", 52.1, False, [])
    assert (bravo.device_id, bravo.callsign, bravo.lat) == ("b2", "Bravo-2", None)


def test_routing_first_look_finds_a_routed_or_closed_event_in_one_query(store):
    """``routed_or_closed``: routing sends nobody to an event already dispatched or closed by an operator."""
    open_id, closed_id, routed_id = new_id(), new_id(), new_id()
    with store.transaction() as conn:
        store.events.apply(conn, [received(event("cam-1", e, 0)) for e in (open_id, closed_id, routed_id)])
        conn.execute(sql(store, "UPDATE events SET status = 'closed' WHERE event_id = ?"), [closed_id])
        repo = store.routing_repository(conn)
        repo.insert_dispatch({"dispatch_id": "d1", "event_id": routed_id, "unit": "b1", "state": "sent",
                              "created_at": AT, "attempt": 1})  # fmt: skip
        assert not repo.routed_or_closed(open_id)
        assert not repo.routed_or_closed(new_id())  # no such event (yet)
        assert repo.routed_or_closed(closed_id)
        assert repo.routed_or_closed(routed_id)
        repo.update_dispatch("d1", {"state": "acknowledged"})  # any dispatch counts, whatever its state
        assert repo.routed_or_closed(routed_id)


PAVLODAR = (52.2873, 76.9674)


def _units() -> list[Unit]:
    def unit(device, dlat, dlon, **kw):
        values = dict(
            site=SITE, lat=PAVLODAR[0] + dlat, lon=PAVLODAR[1] + dlon, duty="available", online=True
        )
        return Unit(device, **(values | kw))

    return [
        unit("far", 0.05, 0.05),
        unit("near", 0.001, 0.0),
        unit("middle", 0.0, 0.02),
        unit("nearest-but-busy", 0.0001, 0.0, current_dispatch="d9"),
        unit("nearest-but-offline", 0.0002, 0.0, online=False),
        unit("nearest-but-off-duty", 0.0003, 0.0, duty="off_duty"),
        Unit("nowhere", site=SITE, duty="available", online=True),
    ]


def test_nearest_available_units_nearest_first(store):
    with store.transaction() as conn:
        repo = store.routing_repository(conn)
        repo.save_units(_units())  # one statement for them all, as routing saves a run of badges' reports
        found = repo.nearest_units(*PAVLODAR, limit=2)
        everyone = repo.nearest_units(*PAVLODAR, limit=10)
    assert [device for device, _ in found] == ["near", "middle"]
    assert [device for device, _ in everyone] == ["near", "middle", "far"]
    by_id = {u.device_id: u for u in _units()}
    for device, metres in everyone:
        assert metres == pytest.approx(haversine_m(*PAVLODAR, by_id[device].lat, by_id[device].lon), rel=1e-6)


def test_postgresql_finds_nearest_units_by_postgis_and_by_plain_sql_alike(postgres_url, tmp_path):
    from kuzet.central.routing.repository_pg import NEAREST_KNN, NEAREST_SQL, PostgresRoutingRepository

    store = open_store(StoreSection(url=postgres_url), tmp_path)
    try:
        if store.describe()["nearest_units"] != NEAREST_KNN:
            pytest.skip("PostGIS is not installed beside this PostgreSQL (.ci/run installs it)")
        with store.transaction() as conn:
            for unit in _units():
                store.routing_repository(conn).save_unit(unit)
            knn = PostgresRoutingRepository(lambda: conn, nearest_method=NEAREST_KNN).nearest_units(
                *PAVLODAR, 10
            )
            plain = PostgresRoutingRepository(lambda: conn, nearest_method=NEAREST_SQL).nearest_units(
                *PAVLODAR, 10
            )
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "EXPLAIN SELECT device_id FROM units ORDER BY position <-> "
                    "ST_SetSRID(ST_MakePoint(76.9, 52.3), 4326)::geography LIMIT 3"
                )
            )
    finally:
        store.close()
    assert [d for d, _ in knn] == [d for d, _ in plain] == ["near", "middle", "far"]
    assert [m for _, m in knn] == pytest.approx([m for _, m in plain], rel=1e-6)
    assert "idx_units_position" in plan or "Seq Scan" in plan  # a handful of rows may not need the index


def test_postgresql_retention_drops_whole_months_and_keeps_held_events(postgres_url, tmp_path):
    store = open_store(StoreSection(url=postgres_url, partitions_ahead_months=1), tmp_path)
    try:
        store.ensure_partitions(datetime(2026, 9, 1, tzinfo=UTC))  # September, October
        assert {"events_2026_09", "events_2026_10"} <= set(store.partitions())
        old, held, recent = new_id(), new_id(), new_id()
        with store.transaction() as conn:
            store.events.apply(conn, [received(event("cam-1", old, 0), at="2026-09-10T08:00:00.000Z")])
            store.events.apply(conn, [received(event("cam-1", held, 0), at="2026-09-20T08:00:00.000Z")])
            store.events.apply(conn, [received(event("cam-1", recent, 0), at="2026-10-02T08:00:00.000Z")])
            conn.execute("UPDATE events SET hold = 1 WHERE event_id = %s", [held])

        dropped = store.drop_expired_partitions(cutoff="2026-10-15T00:00:00.000Z")

        assert [(d.partition, d.events, d.held) for d in dropped] == [("events_2026_09", 1, 1)]
        assert "events_2026_09" not in store.partitions() and "events_2026_10" in store.partitions()
        with store.transaction() as conn:
            kept = {r["event_id"]: r for r in store.events.rows(conn, [old, held, recent])}
            timeline = {r[0] for r in conn.execute("SELECT event_id FROM event_updates").fetchall()}
            # The held event still takes its device's later messages (it is in events_default now).
            store.events.apply(
                conn, [received(event("cam-1", held, 1, "closed"), at="2026-10-20T08:00:00.000Z")]
            )
            [later] = store.events.rows(conn, [held])
        assert set(kept) == {held, recent}
        assert kept[held]["hold"] is True and kept[held]["received_at"] == "2026-09-20T08:00:00.000Z"
        assert timeline == {held, recent}
        assert (later["edge_state"], later["received_at"]) == ("closed", "2026-09-20T08:00:00.000Z")
    finally:
        store.close()


def test_store_url_must_be_postgresql():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="postgresql://"):
        StoreSection(url="mysql://db/kuzet")


def test_postgresql_workers_racing_on_the_same_messages_store_each_once(postgres_url, tmp_path):
    """Two ingest workers handed overlapping batches (a QoS 1 redelivery to another worker of a shared
    subscription) at the same moment: every event has one row, every message one timeline entry."""
    import threading

    store = open_store(StoreSection(url=postgres_url, pool_max=4), tmp_path)
    event_ids = [new_id() for _ in range(500)]
    messages = [
        event("cam-1", e, seq, "open" if seq == 0 else "update") for e in event_ids for seq in range(3)
    ]
    start = threading.Barrier(2)
    results = []

    errors = []

    def worker(batch):
        start.wait()
        try:
            with store.transaction() as conn:
                results.append(store.events.apply(conn, [received(m) for m in batch]))
        except Exception as exc:  # e.g. a deadlock between the two: a batch that would go back to the broker
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(batch,)) for batch in (messages, messages[::-1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with store.transaction() as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
                500,
                500,
            )
            assert conn.execute("SELECT count(*) FROM event_updates").fetchone()[0] == 1500
            assert {r["seq"] for r in store.events.rows(conn, event_ids)} == {2}
    finally:
        store.close()
    assert errors == [] and len(results) == 2  # both workers' transactions committed
    assert sum(len(r.new_event_ids) for r in results) == 500  # each new event announced by one worker only


def test_a_sqlite_database_from_before_migrations_is_brought_up_to_date(tmp_path):
    """A site's database made by a version without ``schema_migrations`` gets the numbered migrations on
    its next start, with its rows untouched."""
    import sqlite3

    from kuzet.central.store.schema import open_database

    path = tmp_path / "kuzet.db"
    open_database(path).close()
    with sqlite3.connect(path) as old:  # as the previous version left it
        old.execute("DROP TABLE schema_migrations")
        old.execute("DROP INDEX idx_units_duty_online")
        for column in ("detail_key", "detail_params"):  # migration 0006's
            old.execute(f"ALTER TABLE dispatch_log DROP COLUMN {column}")
        for column in ("claim_id", "claimed_at"):  # migration 0007's
            old.execute(f"ALTER TABLE clips DROP COLUMN {column}")
        for column in ("resent_at", "resent_since"):  # migration 0008's
            old.execute(f"ALTER TABLE broker_sessions DROP COLUMN {column}")
        old.execute("INSERT INTO units (device_id, duty) VALUES ('badge-1', 'available')")
    db = open_database(path)
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()}
    assert versions == [m.version for m in migrate.available("sqlite")]
    assert "idx_units_duty_online" in indexes
    assert {"detail_key", "detail_params"} <= set(db["dispatch_log"].columns_dict)
    assert {"claim_id", "claimed_at"} <= set(db["clips"].columns_dict)
    assert {"resent_at", "resent_since"} <= set(db["broker_sessions"].columns_dict)
    assert db.execute("SELECT device_id FROM units").fetchall() == [("badge-1",)]
    db.close()


def test_postgresql_store_carries_on_after_the_server_restarts(postgres_cluster, postgres_url, tmp_path):
    """The pool's connections die with the server; the next transaction gets a fresh one, not an error."""
    store = open_store(StoreSection(url=postgres_url, pool_min=2, pool_max=2), tmp_path)
    try:
        before, after = new_id(), new_id()
        with store.transaction() as conn:
            store.events.apply(conn, [received(event("cam-1", before, 0))])
        postgres_cluster.restart()
        with store.transaction() as conn:
            store.events.apply(conn, [received(event("cam-1", after, 0))])
        with store.transaction() as conn:
            assert {r["event_id"] for r in store.events.rows(conn, [before, after])} == {before, after}
    finally:
        store.close()


def test_postgresql_has_every_column_that_sqlite_has(postgres_url, tmp_path):
    """The two schemas drift when a column is added to schema.py without a PostgreSQL migration (units'
    status_since and devices' view did): central's code would then fail on PostgreSQL only."""
    sqlite = open_store(StoreSection(), tmp_path)
    postgres = open_store(StoreSection(url=postgres_url), tmp_path)
    with sqlite.transaction() as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        wanted = {
            (table, row[1])
            for table in tables
            if not table.startswith("sqlite_")
            for row in conn.execute(f"PRAGMA table_info({table})")
        }
    with postgres.transaction() as conn:
        sql = "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        present = {(table, column) for table, column in conn.execute(sql)}
    sqlite.close()
    postgres.close()
    assert wanted - present == set()
