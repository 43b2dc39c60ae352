"""Shifts, the shift log, "my incidents" and response times: shift boundaries in the site's zone, figures
computed from the audit log and the dispatch log, entries refused with a clear answer that loses nothing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.shift import respond
from support.web import csrf_token, login, make_central

from kuzet.central.auth import audit
from kuzet.central.config import CentralConfig
from kuzet.central.store import portable, response_times, shift_log, shifts
from kuzet.central.web import create_app
from kuzet.shared import timeutil

ALMATY = ZoneInfo("Asia/Almaty")


def test_a_night_shift_runs_past_midnight_in_the_site_zone():
    # 02:30 UTC is 07:30 in Almaty: still the night shift that began at 20:00 local the day before.
    night = shifts.shift_of(datetime(2026, 12, 5, 2, 30, tzinfo=UTC), ["08:00", "20:00"], ALMATY)
    assert (night.key, night.end.strftime("%Y-%m-%dT%H:%M")) == ("2026-12-04T20:00", "2026-12-05T08:00")
    assert night.start_wire == "2026-12-04T15:00:00.000Z"
    day = shifts.shift_of(datetime(2026, 12, 5, 3, 0, tzinfo=UTC), ["20:00", "08:00"], ALMATY)
    assert day.key == "2026-12-05T08:00"
    keys = [s.key for s in shifts.recent(datetime(2026, 12, 5, 3, 0, tzinfo=UTC), ["08:00"], ALMATY, 3)]
    assert keys == ["2026-12-05T08:00", "2026-12-04T08:00", "2026-12-03T08:00"]


@pytest.mark.parametrize("starts", [["8:00"], ["08:00", "08:00"], ["24:00"], []])
def test_shift_starts_that_are_not_times_of_day_are_refused(starts):
    with pytest.raises(ValueError, match="shift"):
        CentralConfig.model_validate({"site": {"shifts": starts}})


def test_response_times_per_shift_and_per_unit(db):
    now = timeutil.utc_now()
    running = shifts.shift_of(now, ["08:00", "20:00"], ALMATY)
    base = running.start.astimezone(UTC) + timedelta(minutes=1)
    first = respond(db, base, ack_s=30, sent_s=60, unit_ack_s=90, on_scene_s=600, close_s=1200, unit="p-1")
    second = respond(
        db, base, ack_s=90, sent_s=120, unit_ack_s=None, on_scene_s=None, close_s=None, unit="p-2"
    )
    respond(db, base, ack_s=None, sent_s=None, unit_ack_s=None, on_scene_s=None, close_s=None)
    earlier = base - timedelta(hours=12)  # the shift before: must not mix in
    respond(db, earlier, ack_s=5, sent_s=None, unit_ack_s=None, on_scene_s=None, close_s=None)

    recent = shifts.recent(now, ["08:00", "20:00"], ALMATY, 2)
    (this, summary), (before, summary_before) = response_times.per_shift(db, recent)
    assert this == running and summary["count"] == 3
    assert summary["to_acknowledge"] == {"n": 2, "median": 60.0, "p90": pytest.approx(84.0)}
    assert summary["to_dispatch"]["n"] == 2 and summary["to_dispatch"]["median"] == 90.0
    assert summary["to_arrival"] == {"n": 1, "median": 600.0, "p90": 600.0}
    assert summary["to_resolution"]["median"] == 1200.0
    assert summary_before["count"] == 1 and summary_before["to_dispatch"] is None

    units = response_times.per_unit(db, recent[-1].start_wire, recent[0].end_wire)
    assert set(units) == {"p-1", "p-2"}
    assert units["p-1"]["to_acknowledge"]["median"] == 90.0  # the unit's own acknowledgement
    assert units["p-2"]["to_arrival"] is None and units["p-2"]["count"] == 1

    mine = shift_log.my_incidents(db, "operator", running.start_wire, running.end_wire)
    assert [(e["event_id"], [a["action"] for a in e["actions"]]) for e in mine] == [
        (first["event_id"], ["event.acknowledge", "event.close"]),  # the latest work first
        (second["event_id"], ["event.acknowledge"]),
    ]


def test_shift_log_refuses_what_it_cannot_keep_and_audits_what_it_keeps(db):
    for kind, text, why in (("memo", "x", "kind"), ("note", "   ", "empty"), ("note", "x" * 4001, "4000")):
        with pytest.raises(shift_log.ShiftLogError, match=why):
            shift_log.add(db, "operator", kind, text)
    assert portable.rows(db, "SELECT * FROM shift_log") == []
    entry = shift_log.add(db, "operator", "handover", "  Camera 7 offline since 19:40; p-2 at the depot.  ")
    assert entry["text"] == "Camera 7 offline since 19:40; p-2 at the depot."
    [logged] = audit.entries(db, target=f"shift_log:{entry['id']}")
    assert (logged["actor"], logged["action"]) == ("operator", "shift.handover")
    assert audit.verify(db)[0]
    second = shift_log.add(db, "operator", "note", "p-1 back on patrol")
    assert second["id"] > entry["id"]
    listed = shift_log.entries(db, entry["at"], timeutil.to_wire(timeutil.utc_now() + timedelta(minutes=1)))
    assert [(e["id"], e["kind"]) for e in listed] == [(second["id"], "note"), (entry["id"], "handover")]


def test_shift_page_in_russian_keeps_a_refused_entry_and_lists_my_incidents(tmp_path):
    central = make_central(tmp_path, site={"language": "ru"})
    running = shifts.shift_of(timeutil.utc_now(), ["08:00", "20:00"], ALMATY)
    base = running.start.astimezone(UTC) + timedelta(seconds=10)
    mine = respond(central.db(), base, ack_s=1, sent_s=None, unit_ack_s=None, on_scene_s=None, close_s=2)
    respond(
        central.db(),
        base,
        ack_s=1,
        sent_s=None,
        unit_ack_s=None,
        on_scene_s=None,
        close_s=None,
        actor="admin",
    )
    app = create_app(central)
    client = app.test_client()
    login(client, "operator")
    page = client.get("/shift").get_data(as_text=True)
    assert "Смена" in page and "Мои происшествия в этой смене" in page
    assert page.count('data-event="') == 1 and f'data-event="{mine["event_id"]}"' in page
    assert "принято" in page and "закрыто" in page

    too_long = "Пост 3: " + "ж" * 4000
    refused = client.post(
        "/shift/log", data={"kind": "note", "text": too_long, "csrf_token": csrf_token(page)}
    )
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "не более 4000" in body and too_long in body
    assert central.db()["shift_log"].count == 0

    added = client.post(
        "/shift/log",
        data={"kind": "handover", "text": "Камера 7 не в сети", "csrf_token": csrf_token(page)},
        follow_redirects=True,
    )
    assert "Камера 7 не в сети" in added.get_data(as_text=True) and "Передача смены" in added.get_data(
        as_text=True
    )


def test_response_times_csv_in_russian_names_the_zone(tmp_path):
    central = make_central(tmp_path, site={"language": "ru"})
    running = shifts.shift_of(timeutil.utc_now(), ["08:00", "20:00"], ALMATY)
    respond(
        central.db(),
        running.start.astimezone(UTC) + timedelta(seconds=10),
        ack_s=45,
        sent_s=75,
        unit_ack_s=80,
        on_scene_s=400,
        close_s=900,
        unit="p-7",
    )
    client = create_app(central).test_client()
    login(client, "supervisor")
    for by, first in (("shift", running.key), ("unit", "p-7")):
        response = client.get(f"/stats/response-times.csv?by={by}")
        text = response.get_data(as_text=True)
        assert text.startswith("\ufeff")
        rows = list(csv.reader(io.StringIO(text[1:])))
        assert rows[1][0] == first and rows[1][1] == "1"
        if by == "shift":
            assert rows[0][0] == "Начало смены (Asia/Almaty)"
            assert rows[1][2:5] == ["45", "45", "1"]
    assert client.get("/stats/response-times.csv?by=hour").status_code == 400


def test_shift_page_and_response_times_in_kazakh(tmp_path):
    central = make_central(tmp_path, site={"language": "kk"})
    client = create_app(central).test_client()
    login(client, "operator")
    page = client.get("/shift").get_data(as_text=True)
    assert "Ауысым журналы" in page and "Осы ауысымдағы менің оқиғаларым" in page
    assert "Ауысымды тапсыру" in page
    stats = client.get("/stats").get_data(as_text=True)
    assert "Ауысымдар бойынша әрекет ету уақыты" in stats and "Қабылдауға дейін" in stats


def test_ended_shifts_are_kept_and_computed_again_only_when_answered_later(tmp_path, monkeypatch):
    from kuzet.central.store import response_cache

    central = make_central(tmp_path)
    db = central.db()
    now = timeutil.utc_now()
    recent = shifts.recent(now, ["08:00", "20:00"], ALMATY, 4)
    base = recent[2].start.astimezone(UTC) + timedelta(minutes=1)  # two shifts ago: ended
    late = respond(db, base, ack_s=None, sent_s=None, unit_ack_s=None, on_scene_s=None, close_s=None)
    respond(db, base, ack_s=30, sent_s=60, unit_ack_s=90, on_scene_s=600, close_s=1200, unit="p-1")
    respond(
        db,
        recent[0].start.astimezone(UTC),
        ack_s=5,
        sent_s=None,
        unit_ack_s=None,
        on_scene_s=None,
        close_s=None,
    )
    kept = response_cache.EndedShifts()
    computed = []
    real = response_times.per_shift
    monkeypatch.setattr(
        response_times,
        "per_shift",
        lambda db, shifts: computed.extend(s.key for s in shifts) or real(db, shifts),
    )

    def fresh():
        return real(db, recent), response_times.per_unit(db, recent[-1].start_wire, recent[0].end_wire)

    assert kept.figures(db, recent) == fresh()
    assert sorted(computed) == sorted(s.key for s in recent)
    computed.clear()
    assert kept.figures(db, recent) == fresh()
    assert computed == [recent[0].key]  # the running shift alone

    # Answered in this shift, the event of two shifts ago: that shift is computed again, the others are not.
    audit.append(db, "operator", "event.acknowledge", f"event:{late['event_id']}", {})
    computed.clear()
    by_shift, _ = kept.figures(db, recent)
    assert (by_shift, _) == fresh() and by_shift[2][1]["to_acknowledge"]["n"] == 2
    assert sorted(computed) == sorted([recent[0].key, recent[2].key])

    # A patrol's arrival logged now for a dispatch of that shift: computed again, the unit's figures too.
    [dispatch] = list(db["dispatches"].rows)
    db["dispatch_log"].insert(
        {"dispatch_id": dispatch["dispatch_id"], "state": "resolved", "at": timeutil.now_wire()}
    )
    db.conn.commit()
    computed.clear()
    assert kept.figures(db, recent) == fresh() and recent[2].key in computed

    # Events removed (retention) or added behind the logs' back: the count differs, computed again.
    db.execute("DELETE FROM events WHERE event_id = ?", [late["event_id"]])
    db.conn.commit()
    computed.clear()
    by_shift, _ = kept.figures(db, recent)
    assert (by_shift, _) == fresh() and by_shift[2][1]["count"] == 1 and recent[2].key in computed
