"""The events store on its own: ordering and idempotency inside one batch, and the operators' columns."""

from __future__ import annotations

from support.ingest import SITE, event, make_central, new_id

from kuzet.central.store import events


def received(message, at: str = "2026-11-21T10:00:00.000Z") -> events.Received:
    return events.Received(message, SITE, at)


def test_one_batch_with_repeats_and_late_states(tmp_path):
    conn = make_central(tmp_path).db().conn
    event_id = new_id()
    first, third = event("cam-1", event_id, 1), event("cam-1", event_id, 3, "update", label="third")
    batch = [
        received(first),
        received(third),
        received(event("cam-1", event_id, 2, "update")),
        received(third),
    ]
    with conn:
        applied = events.apply(conn, batch)

    assert applied.new_event_ids == [event_id]
    assert (applied.duplicates, applied.timeline_only) == (1, 1)
    assert [r.message.id for r in applied.changed] == [third.id]
    row = conn.execute("SELECT seq, label, edge_state FROM events WHERE event_id = ?", [event_id]).fetchone()
    assert row == (3, "third", "update")
    seqs = [r[0] for r in conn.execute("SELECT seq FROM event_updates ORDER BY seq")]
    assert seqs == [1, 2, 3]

    # The same batch again (a device re-sending its whole outbox) changes nothing at all.
    with conn:
        again = events.apply(conn, batch)
    assert (again.duplicates, again.changed, again.new_event_ids) == (4, [], [])


def test_edge_updates_keep_media_links_and_operator_columns(tmp_path):
    conn = make_central(tmp_path).db().conn
    event_id = new_id()
    with conn:
        events.apply(
            conn, [received(event("cam-1", event_id, 0, snapshot_sha256="a" * 64, clip_id=new_id()))]
        )
        conn.execute(
            "UPDATE events SET status = 'assigned', assigned_to = 'unit-7', hold = 1 WHERE event_id = ?",
            [event_id],
        )
        events.apply(conn, [received(event("cam-1", event_id, 1, "closed"), at="2026-11-21T10:05:00.000Z")])

    row = conn.execute(
        "SELECT edge_state, snapshot_sha256, clip_id, status, assigned_to, hold, received_at, updated_at "
        "FROM events WHERE event_id = ?",
        [event_id],
    ).fetchone()
    assert row[0] == "closed"
    assert row[1] == "a" * 64 and row[2]  # the closed message named no media: the links stay
    assert row[3:6] == ("assigned", "unit-7", 1)
    assert row[6:] == ("2026-11-21T10:00:00.000Z", "2026-11-21T10:05:00.000Z")


def test_rows_of_created_events_are_as_the_page_reads_them(tmp_path):
    """Ingest announces a new event from the row it inserted, without reading it back: that row must be the
    one the page's own query returns, column for column."""
    from kuzet.central.store import queries
    from kuzet.shared import messages

    central = make_central(tmp_path)
    conn = central.db().conn
    plain, full = new_id(), new_id()
    rich = event(
        "cam-2",
        full,
        0,
        zone="gate",
        description="it's by the gate",
        attributes={"direction_deg": 91.5, "colour": "red"},
        frame_size=(768, 576),
        location=messages.GeoPoint(lat=52.28, lon=76.96),
        snapshot_sha256="b" * 64,
        track_ids=[3, 4],
    )
    with conn:
        applied = events.apply(conn, [received(event("cam-1", plain, 0)), received(rich)])
    assert set(applied.created_rows) == {plain, full}
    for event_id, row in applied.created_rows.items():
        assert row == queries.get_event(central.db(), event_id)
        [read_back] = events.rows(conn, [event_id])
        assert row == read_back
    # An update of an existing event is not "created": it is read back by whoever announces it.
    with conn:
        later = events.apply(conn, [received(event("cam-1", plain, 1, "update"))])
    assert later.created_rows == {}
