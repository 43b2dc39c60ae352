"""Rule logic and the event lifecycle on synthetic tracks: each rule fires when it should and only then, an
event is opened once, updated at a bounded rate and closed once, with a stable id and rising seq."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.events import GATE, GONE, IMAGE, SQUARE, make, person, run, states, walk

from kuzet.edge.delivery import Outbox
from kuzet.edge.events import geometry
from kuzet.edge.events.config import RuleSection, ScheduleSection
from kuzet.edge.events.engine import EventEngine
from kuzet.edge.events.journal import OpenEventJournal
from kuzet.edge.vision.types import Frame, Track
from kuzet.shared import messages, topics


def test_geometry():
    assert geometry.inside((300, 300), SQUARE.polygon)
    assert not geometry.inside((100, 300), SQUARE.polygon)
    a, b = GATE.points
    assert geometry.crossing((50, 300), (150, 300), a, b) == -1  # x grows: from the line's right to its left
    assert geometry.crossing((150, 300), (50, 300), a, b) == 1
    assert geometry.crossing((50, 600), (150, 600), a, b) == 0  # past the end of the segment


def test_zone_enter_opens_once_and_closes_when_the_person_leaves():
    engine, clock = make(RuleSection(name="enter", type="zone_enter", zone="square"))
    path = walk(1, (100, 350), (700, 350), 6)  # through the square and out
    events = run(engine, clock, [[t] for t in path] + GONE)
    assert [e.state for e in events if e.state != "update"] == ["open", "closed"]
    assert len({e.event_id for e in events}) == 1
    assert [e.seq for e in events] == list(range(len(events)))
    opened, closed = events[0], events[-1]
    assert (opened.zone, opened.track_ids, opened.label, opened.severity) == ("square", [1], "person", "low")
    assert closed.ended_at > closed.started_at
    # every message is valid on the wire
    topic = topics.up("pavlodar", "cam-1", "event")
    for event in events:
        wire = messages.encode(event)
        assert messages.encode(messages.decode(topic, wire)) == wire


def test_updates_are_rate_limited_not_per_frame():
    engine, clock = make(RuleSection(name="enter", type="zone_enter", zone="square"), update_interval_s=2.0)
    path = walk(1, (210, 300), (490, 300), 10)  # 10 s inside, moving all the time
    events = run(engine, clock, [[t] for t in path])
    updates = [e for e in events if e.state == "update"]
    assert 3 <= len(updates) <= 5  # about one per 2 s, not 100


def test_a_still_person_makes_no_updates():
    engine, clock = make(RuleSection(name="enter", type="zone_enter", zone="square"))
    events = run(engine, clock, [[person(1, 300, 300)]] * 100)
    assert states(events) == [("zone_enter", "open", 0)]


def test_zone_exit():
    engine, clock = make(RuleSection(name="out", type="zone_exit", zone="square", linger_s=1))
    path = walk(1, (300, 350), (700, 350), 4)
    events = run(engine, clock, [[t] for t in path])
    assert [e.state for e in events if e.state != "update"] == ["open", "closed"]


def test_loitering_needs_the_dwell_time():
    rule = RuleSection(name="loiter", type="loitering", zone="square", dwell_s=5)
    engine, clock = make(rule)
    short = run(engine, clock, [[person(1, 300, 300)]] * 40 + GONE)
    assert short == []
    engine, clock = make(rule)
    long = run(engine, clock, [[person(2, 300, 300)]] * 80 + GONE)
    assert [e.state for e in long] == ["open", "closed"]
    assert long[0].attributes["dwell_s"] >= 5
    assert long[0].severity == "medium"


def test_line_crossing_respects_direction():
    rule = RuleSection(name="gate", type="line_crossing", line="gate", direction="left_to_right")
    engine, clock = make(rule)
    leftwards = run(engine, clock, [[t] for t in walk(1, (50, 300), (150, 300), 2)])
    assert leftwards == []  # right to left: not the forbidden way
    rightwards = run(engine, clock, [[t] for t in walk(2, (150, 300), (50, 300), 2)])
    assert [e.state for e in rightwards if e.state != "update"] == ["open"]
    assert rightwards[0].attributes["direction"] == "left_to_right"
    assert rightwards[0].zone == "gate"


def test_crowd_is_one_event_for_the_zone():
    engine, clock = make(
        RuleSection(name="crowd", type="crowd", zone="square", max_count=3, min_duration_s=1)
    )
    three = [person(i, 250 + 40 * i, 300) for i in range(3)]
    five = [person(i, 250 + 40 * i, 300) for i in range(5)]
    events = run(engine, clock, [three] * 20 + [five] * 30 + [three[:2]] * 60)
    assert [e.state for e in events if e.state != "update"] == ["open", "closed"]
    assert events[0].track_ids == [0, 1, 2, 3, 4]
    assert events[0].attributes["count"] == 5
    assert events[0].severity == "high"


def test_running_uses_speed_in_body_heights():
    engine, clock = make(RuleSection(name="run", type="running", min_duration_s=0.5))
    walking = [[person(1, 100 + i * 8, 300, vx=80, h=100)] for i in range(30)]  # 0.8 heights/s
    assert run(engine, clock, walking) == []
    running = [[person(2, 100 + i * 25, 300, vx=250, h=100)] for i in range(20)] + GONE  # 2.5 heights/s
    events = run(engine, clock, running)
    assert [e.state for e in events if e.state != "update"] == ["open", "closed"]
    # far from the camera the same pixel speed is a sprint
    engine, clock = make(RuleSection(name="run", type="running", min_duration_s=0.5))
    far = [[person(3, 100 + i * 8, 300, vx=80, h=30)] for i in range(20)]
    assert [e.state for e in run(engine, clock, far)] == ["open"]


def test_no_stopping_only_for_vehicles_that_stop():
    rule = RuleSection(name="stop", type="no_stopping", zone="square", stopped_s=3)
    engine, clock = make(rule)
    moving = [[person(1, 210 + i * 10, 300, vx=100, label="car", h=80)] for i in range(28)]
    assert run(engine, clock, moving) == []
    parked = [[person(2, 300, 300, label="car", h=80)]] * 50
    assert [e.state for e in run(engine, clock, parked)] == ["open"]
    engine, clock = make(rule)
    assert run(engine, clock, [[person(3, 300, 300)]] * 50) == []  # a person standing is not parking


def test_object_left_behind_by_a_person():
    rule = RuleSection(name="left", type="object_left", stationary_s=3, owner_window_s=5)
    engine, clock = make(rule)
    bag = person(9, 300, 400, label="backpack", h=30)
    with_owner = [[person(1, 310, 400), bag]] * 10  # the bag appears at a person's feet
    owner_walks_off = [[person(1, 310 + i * 20, 400, vx=200), bag] for i in range(10)]
    alone = [[bag]] * 40
    events = run(engine, clock, with_owner + owner_walks_off + alone)
    assert [e.state for e in events] == ["open"]
    assert (events[0].label, events[0].track_ids, events[0].severity) == ("backpack", [9], "high")
    # a bag that nobody brought (already there, no person near) is not an alarm
    engine, clock = make(rule)
    assert run(engine, clock, [[bag]] * 60) == []


def lying(track_id, x, y, *, vx=0.0, h=40.0) -> Track:
    """A person's box on its side: as wide as a standing box is tall."""
    t = person(track_id, x, y, vx=vx, h=h)
    return replace(t, box=(x - h * 1.25, y - h, h * 2.5, h))


def test_person_down_after_a_fall_and_only_then():
    rule = RuleSection(name="down", type="person_down", zone="square", down_s=3)
    up = walk(1, (250, 350), (300, 350), 2)
    engine, clock = make(rule)
    events = run(engine, clock, [[t] for t in up] + [[lying(1, 300, 350)]] * 40)
    [opened] = [e for e in events if e.state == "open"]
    assert (opened.event_type, opened.severity, opened.track_ids) == ("person_down", "high", [1])
    assert opened.attributes["down_s"] >= 3
    # a fall that loses the track for a few frames is the same fall
    engine, clock = make(rule)
    lost = [[t] for t in up] + [[]] * 5 + [[lying(1, 300, 350)]] * 40
    assert [e.state for e in run(engine, clock, lost) if e.state == "open"] == ["open"]
    # lying down for less than down_s, then up again: nothing
    engine, clock = make(rule)
    assert (
        run(engine, clock, [[t] for t in up] + [[lying(1, 300, 350)]] * 20 + [[person(1, 300, 350)]] * 40)
        == []
    )
    # still moving once on the ground (crawling, a box that only looks flat while bending): nothing
    engine, clock = make(rule)
    crawling = [[lying(1, 300 + i * 3, 350, vx=30)] for i in range(40)]
    assert run(engine, clock, [[t] for t in up] + crawling) == []
    # never seen upright (a flat thing taken for a person, someone lying since before the camera saw them)
    engine, clock = make(rule)
    assert run(engine, clock, [[lying(1, 300, 350)]] * 60) == []


def test_schedule_arms_a_rule_only_in_its_window():
    at_night = ScheduleSection(start="22:00", end="06:00")
    engine, clock = make(
        RuleSection(name="night", type="zone_enter", zone="square", schedule=at_night, min_duration_s=0)
    )
    assert run(engine, clock, [[person(1, 300, 300)]] * 10) == []  # 15:00 local
    clock.now = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)  # 01:00 local, Sunday morning of Saturday night
    assert [e.state for e in run(engine, clock, [[person(1, 300, 300)]] * 10)] == ["open"]
    assert at_night.active(datetime(2026, 11, 21, 17, 30, tzinfo=UTC))  # 22:30 local
    assert not at_night.active(datetime(2026, 11, 21, 1, 30, tzinfo=UTC))  # 06:30 local


def test_rules_refer_to_defined_zones_and_lines():
    with pytest.raises(ValueError, match="no zone named 'yard'"):
        EventEngine("cam-1", [SQUARE], [], [RuleSection(name="x", type="zone_enter", zone="yard")])
    with pytest.raises(ValueError, match="needs a line"):
        RuleSection(name="x", type="line_crossing")


def test_close_all_closes_every_open_event():
    engine, clock = make(RuleSection(name="enter", type="zone_enter", zone="square", min_duration_s=0))
    run(engine, clock, [[person(1, 300, 300), person(2, 480, 480)]])
    closed = engine.close_all(Frame(IMAGE, 1, 0.1))
    assert sorted(c.event.state for c in closed) == ["closed", "closed"]
    assert engine.open == {}


def test_events_left_open_by_a_killed_agent_are_closed_on_restart(tmp_path):
    engine, clock = make(
        RuleSection(name="enter", type="zone_enter", zone="square", min_duration_s=0, grace_s=0)
    )
    outbox = Outbox(tmp_path / "outbox.db")
    journal = OpenEventJournal(outbox)
    events = run(
        engine,
        clock,
        [[person(1, 300, 300)], [person(1, 300, 300), person(2, 250, 480)], [person(2, 250, 480)]],
    )
    for event in events:
        with outbox.transaction() as tx:  # as the agent queues each event message
            tx.put("t", messages.encode(event), kind="event")
            journal.record(tx, event)
    outbox.close()  # the agent dies here: event 2 is still open

    [closing] = OpenEventJournal(Outbox(tmp_path / "outbox.db")).closing_messages()
    still_open = [e for e in events if e.track_ids == [2]][-1]
    assert (closing.event_id, closing.seq, closing.state) == (
        still_open.event_id,
        still_open.seq + 1,
        "closed",
    )
    assert closing.id != still_open.id and closing.ended_at >= closing.started_at
    topic = topics.up("pavlodar", "cam-1", "event")
    assert messages.decode(topic, messages.encode(closing)).state == "closed"


KILLED_MID_TRANSACTION = """
import os, signal, sys
from kuzet.edge.delivery import Outbox
from kuzet.edge.events.journal import OpenEventJournal
from kuzet.shared import messages
outbox = Outbox(sys.argv[1])
journal = OpenEventJournal(outbox)
event = messages.Event.model_validate_json(sys.argv[2])
with outbox.transaction() as tx:
    tx.put("t", messages.encode(event), kind="event")
    tx.count("events_created")
    journal.record(tx, event)
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # after the writes, before the commit
"""


@pytest.mark.parametrize("kill", [True, False])
def test_an_event_message_and_its_journal_entry_commit_together(tmp_path, kill):
    """SIGKILL in the middle of queuing an event leaves neither its message nor its journal entry (nor its
    count): the restarted agent can never hold an event open that central never heard of, or the reverse."""
    engine, clock = make(RuleSection(name="enter", type="zone_enter", zone="square", min_duration_s=0))
    [opened] = run(engine, clock, [[person(1, 300, 300)]])
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_MID_TRANSACTION,
            str(tmp_path / "outbox.db"),
            opened.model_dump_json(),
            "kill" if kill else "live",
        ],
        cwd=repo,
    )
    assert done.returncode == (-9 if kill else 0)
    outbox = Outbox(tmp_path / "outbox.db")
    left_open = OpenEventJournal(outbox).closing_messages()
    expected = 0 if kill else 1
    assert (outbox.depth(), outbox.counter("events_created"), len(left_open)) == (expected,) * 3
