"""The incident lifecycle on synthetic tracks: one event per real incident, whatever the perception flickers."""

from __future__ import annotations

import itertools

import pytest
from support.events import GONE, make, person, run, walk

from kuzet.edge.events import lifecycle
from kuzet.edge.events.config import LIFECYCLE_DEFAULTS, RuleSection


def opened(events) -> list:
    return [e for e in events if e.state == "open"]


def test_the_state_machine_is_complete():
    phases = (lifecycle.IDLE, lifecycle.PENDING, lifecycle.OPEN, lifecycle.FADING, lifecycle.COOLING)
    signals = (lifecycle.SEEN, lifecycle.HELD, lifecycle.MISSING, lifecycle.EXPIRED)
    assert set(lifecycle.TRANSITIONS) >= {
        (p, s) for p, s in itertools.product(phases, signals) if p != lifecycle.IDLE or s in ("seen", "held")
    }
    opens = [k for k, (_, action) in lifecycle.TRANSITIONS.items() if action == "open"]
    assert {phase for phase, _ in opens} == {lifecycle.IDLE, lifecycle.PENDING}  # only a new incident opens
    assert set(LIFECYCLE_DEFAULTS) == set(RuleSection.model_fields["type"].annotation.__args__)


@pytest.mark.parametrize("with_lifecycle, expected", [(True, 1), (False, 2)])
def test_a_track_lost_for_a_second_is_one_event(with_lifecycle, expected):
    engine, clock = make(
        RuleSection(name="enter", type="zone_enter", zone="square"), lifecycle=with_lifecycle
    )
    here = [[person(1, 300, 300)]]
    events = run(engine, clock, here * 30 + [[]] * 10 + here * 30 + GONE)
    assert len(opened(events)) == expected
    if with_lifecycle:
        [closed] = [e for e in events if e.state == "closed"]
        # the event ended when the person was last seen, not when the grace ran out
        assert (closed.ended_at - closed.started_at).total_seconds() == pytest.approx(7.0, abs=0.3)


def test_nothing_is_raised_before_the_minimum_duration():
    engine, clock = make(RuleSection(name="enter", type="zone_enter", zone="square", min_duration_s=2))
    assert run(engine, clock, [[person(1, 300, 300)]] * 15 + GONE) == []  # 1.5 s: a glimpse
    events = run(engine, clock, [[person(2, 300, 300)]] * 25 + GONE)
    assert [e.state for e in events] == ["open", "closed"]
    assert (events[0].ts - events[0].started_at).total_seconds() >= 1.9  # started when it began


def test_a_crowd_wobbling_around_its_threshold_is_one_event():
    rule = RuleSection(name="crowd", type="crowd", zone="square", max_count=3, min_duration_s=0.5)
    people = [person(i, 250 + 40 * i, 300) for i in range(5)]
    wobble = ([people[:4]] * 8 + [people[:3]] * 7) * 6  # 4, 3, 4, 3 ... for 9 s
    engine, clock = make(rule)
    assert len(opened(run(engine, clock, wobble + [people[:2]] * 70))) == 1
    engine, clock = make(rule, lifecycle=False)
    assert len(opened(run(engine, clock, wobble))) >= 5  # without hysteresis: one per wobble


def test_a_crowd_closes_below_the_hysteresis_after_its_grace_and_cools_down():
    rule = RuleSection(
        name="crowd", type="crowd", zone="square", max_count=3, min_duration_s=1, grace_s=2, cooldown_s=10
    )
    people = [person(i, 250 + 40 * i, 300) for i in range(5)]
    engine, clock = make(rule)
    events = run(engine, clock, [people[:4]] * 20 + [people[:2]] * 30)
    assert [e.state for e in events if e.state != "update"] == ["open", "closed"]
    # it forms again 3 s after closing: inside the cool-down, no new event; after it, a new one
    events = run(engine, clock, [people[:4]] * 30 + [people[:2]] * 30, start_ts=5.0)
    assert opened(events) == []
    events = run(engine, clock, [people[:4]] * 30, start_ts=15.0)
    assert len(opened(events)) == 1


def test_a_person_re_found_under_a_new_track_keeps_loitering():
    """An id switch halfway through a 30 s stay: one loitering event, counted from the first track's arrival,
    naming both tracks; a new person far away is not the lost one."""
    rule = RuleSection(name="loiter", type="loitering", zone="square", dwell_s=20)
    first = [[person(1, 300 + i * 0.5, 300)] for i in range(150)]  # 15 s, drifting slowly
    second = [[person(2, 380, 302)] for _ in range(150)]  # 1 s later, 5 px on: the tracker's new id
    frames = first + [[]] * 10 + second + GONE
    engine, clock = make(rule)
    events = run(engine, clock, frames)
    assert len(opened(events)) == 1
    assert events[-1].attributes["dwell_s"] > 30  # counted from the first track's arrival
    assert events[-1].track_ids == [1, 2]
    # raised once the 20 s dwell has held loitering's default 2 s (min_duration_s)
    assert opened(events)[0].attributes["dwell_s"] == pytest.approx(22, abs=0.5)
    engine, clock = make(rule, lifecycle=False)
    assert opened(run(engine, clock, frames)) == []  # neither track alone stayed 20 s

    far = [[person(3, 480, 480)] for _ in range(150)]  # 1 s later, 4 heights away: someone else
    engine, clock = make(rule)
    events = run(engine, clock, first + [[]] * 10 + far)
    assert opened(events) == []


def test_a_person_dithering_on_a_line_crosses_it_once():
    rule = RuleSection(name="gate", type="line_crossing", line="gate", direction="left_to_right")
    back_and_forth = []
    for _ in range(3):  # over and back, three times in 12 s
        back_and_forth += walk(1, (130, 300), (70, 300), 2) + walk(1, (70, 300), (130, 300), 2)
    engine, clock = make(rule)
    assert len(opened(run(engine, clock, [[t] for t in back_and_forth] + GONE))) == 1
    engine, clock = make(rule, lifecycle=False)
    assert len(opened(run(engine, clock, [[t] for t in back_and_forth] + GONE))) == 3


def test_zone_wide_cooldown_holds_back_anyone():
    rule = RuleSection(
        name="enter", type="zone_enter", zone="square", cooldown_s=30, cooldown_scope="zone", grace_s=1
    )
    engine, clock = make(rule)
    events = run(
        engine,
        clock,
        [[person(1, 300, 300)]] * 20 + [[]] * 20 + [[person(2, 400, 400)]] * 20 + [[]] * 20,
    )
    assert len(opened(events)) == 1


def test_people_together_are_one_incident_people_apart_are_two():
    rule = RuleSection(name="enter", type="zone_enter", zone="square")
    engine, clock = make(rule)
    pair = [[person(1, 300, 300), person(2, 340, 300)]] * 30 + GONE  # side by side onto the square
    events = run(engine, clock, pair)
    assert len(opened(events)) == 1 and events[-1].track_ids == [1, 2]
    assert [e.state for e in events].count("closed") == 1
    engine, clock = make(rule)
    apart = [[person(1, 250, 250), person(2, 450, 450)]] * 30 + GONE
    assert len(opened(run(engine, clock, apart))) == 2
