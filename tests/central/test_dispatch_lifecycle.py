"""Every dispatch transition, state by trigger, against central.routing.lifecycle: no broker, no database.

The expected table below is written out by hand, independently of lifecycle.TRANSITIONS: a rule changed there
without changing it here fails one of these tests."""

from __future__ import annotations

import itertools

import pytest

from kuzet.central.routing import lifecycle as lc
from kuzet.central.routing.lifecycle import (
    ALERT,
    CLEAR_DEADLINE,
    CLOSE_EVENT,
    ESCALATE,
    FREE_UNIT,
    NOTIFY_BADGE,
    REQUEUE,
    REROUTE,
    ROUTE_NEXT,
    SEND,
    SEND_AGAIN,
)

STAND_DOWN_ACTIVE = ("cancelled", (FREE_UNIT, NOTIFY_BADGE))
STAND_DOWN_PROPOSAL = ("cancelled", (FREE_UNIT,))
REVOKED_ACTIVE = ("cancelled", (FREE_UNIT, NOTIFY_BADGE, ALERT, REROUTE))
SAME = None  # a repeat: the state stays, nothing is recorded

# (state, trigger) -> (next state, effects for a "nearest" dispatch); SAME: an accepted no-op.
EXPECTED: dict[tuple[str, str], tuple[str, tuple[str, ...]] | None] = {
    ("proposed", "confirm"): ("sent", (SEND,)),
    ("proposed", "confirm_overdue_send"): ("sent", (SEND, ALERT)),
    ("proposed", "confirm_overdue_alert"): ("proposed", (CLEAR_DEADLINE, ALERT)),
    ("proposed", "confirm_overdue_busy"): ("cancelled", (FREE_UNIT, ROUTE_NEXT, ALERT)),
    ("proposed", "supersede"): STAND_DOWN_PROPOSAL,
    ("proposed", "cancel"): STAND_DOWN_PROPOSAL,
    ("proposed", "event_closed"): STAND_DOWN_PROPOSAL,
    ("proposed", "other_resolved"): STAND_DOWN_PROPOSAL,
    ("proposed", "revoke"): ("cancelled", (FREE_UNIT, ALERT, REROUTE)),
    ("sent", "ack_deadline"): ("timed_out", (FREE_UNIT, NOTIFY_BADGE, ESCALATE)),
    ("sent", "back_online"): ("sent", (SEND_AGAIN,)),
    ("sent", "acknowledged"): ("acknowledged", ()),
    ("sent", "en_route"): ("en_route", ()),
    ("sent", "on_scene"): ("on_scene", ()),
    ("sent", "resolved"): ("resolved", (FREE_UNIT, CLOSE_EVENT)),
    ("acknowledged", "acknowledged"): SAME,
    ("acknowledged", "en_route"): ("en_route", ()),
    ("acknowledged", "on_scene"): ("on_scene", ()),
    ("acknowledged", "resolved"): ("resolved", (FREE_UNIT, CLOSE_EVENT)),
    ("en_route", "en_route"): SAME,
    ("en_route", "on_scene"): ("on_scene", ()),
    ("en_route", "resolved"): ("resolved", (FREE_UNIT, CLOSE_EVENT)),
    ("on_scene", "on_scene"): SAME,
    ("on_scene", "resolved"): ("resolved", (FREE_UNIT, CLOSE_EVENT)),
    ("resolved", "resolved"): SAME,
    ("declined", "declined"): SAME,
}
for _state in ("sent", "acknowledged", "en_route", "on_scene"):
    EXPECTED[(_state, "cancel")] = STAND_DOWN_ACTIVE
    EXPECTED[(_state, "event_closed")] = STAND_DOWN_ACTIVE
    EXPECTED[(_state, "other_resolved")] = STAND_DOWN_ACTIVE
    EXPECTED[(_state, "revoke")] = REVOKED_ACTIVE
    EXPECTED[(_state, "declined")] = ("declined", (FREE_UNIT, ESCALATE))
    # The unit is not freed: it goes straight to the more urgent event; the event it leaves waits again.
    EXPECTED[(_state, "divert")] = ("diverted", (NOTIFY_BADGE, REQUEUE, ALERT))

STATES = (
    "proposed",
    "sent",
    "acknowledged",
    "en_route",
    "on_scene",
    "resolved",
    "declined",
    "cancelled",
    "timed_out",
    "diverted",
)
TRIGGERS = (
    "confirm",
    "confirm_overdue_alert",
    "confirm_overdue_send",
    "confirm_overdue_busy",
    "supersede",
    "cancel",
    "revoke",
    "event_closed",
    "other_resolved",
    "ack_deadline",
    "divert",
    "back_online",
    "acknowledged",
    "en_route",
    "on_scene",
    "resolved",
    "declined",
)
REFUSED = sorted(set(itertools.product(STATES, TRIGGERS)) - set(EXPECTED))


def test_the_lifecycle_knows_exactly_these_states_and_triggers():
    assert set(lc.STATES) == set(STATES)
    assert set(lc.TRIGGERS) == set(TRIGGERS)
    assert set(lc.TRANSITIONS) == set(EXPECTED)


def _ids(pairs) -> list[str]:
    return [f"{state}+{trigger}" for state, trigger in pairs]


@pytest.mark.parametrize(("state", "trigger"), sorted(EXPECTED), ids=_ids(sorted(EXPECTED)))
def test_allowed_transition(state, trigger):
    step = lc.apply(state, trigger, mode="nearest")
    expected = EXPECTED[(state, trigger)]
    if expected is SAME:
        assert (step.state, step.effects, step.changed) == (state, (), False)
    else:
        assert (step.state, step.effects) == expected
        assert step.changed == (trigger not in ("confirm_overdue_alert", "back_online"))  # the state stays


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=_ids(REFUSED))
def test_refused_transition(state, trigger):
    assert not lc.allowed(state, trigger)
    with pytest.raises(lc.Refused) as refused:
        lc.apply(state, trigger)
    assert (refused.value.state, refused.value.trigger) == (state, trigger)
    assert str(refused.value)


@pytest.mark.parametrize("state", ["acknowledged", "en_route", "on_scene"])
def test_a_badge_answers_only_move_forward(state):
    earlier = lc.PROGRESS[1 : lc.PROGRESS.index(state)]
    for answer in earlier:
        with pytest.raises(lc.Refused, match=f"{answer} after {state}"):
            lc.apply(state, answer)


@pytest.mark.parametrize("answer", ["acknowledged", "en_route", "on_scene", "resolved", "declined"])
@pytest.mark.parametrize("state", ["cancelled", "timed_out"])
def test_a_dispatch_taken_back_hears_no_answer(state, answer):
    with pytest.raises(lc.Refused, match=f"already {state}"):
        lc.apply(state, answer)


@pytest.mark.parametrize("state", ["sent", "acknowledged", "en_route", "on_scene"])
def test_a_revoked_unit_is_stood_down_told_and_replaced(state):
    step = lc.apply(state, "revoke")
    assert step.state == "cancelled"
    assert {FREE_UNIT, NOTIFY_BADGE, REROUTE} <= set(step.effects)


@pytest.mark.parametrize("mode", ["nearest", "manual", "intercept"])
def test_a_badge_back_online_gets_again_only_a_dispatch_it_has_not_acknowledged(mode):
    assert lc.apply("sent", "back_online", mode=mode) == lc.Step("sent", (SEND_AGAIN,), changed=False)
    for state in ("proposed", "acknowledged", "en_route", "on_scene", *lc.FINAL):
        with pytest.raises(lc.Refused, match=f"the dispatch is {state}: only one not yet acknowledged"):
            lc.apply(state, "back_online", mode=mode)


@pytest.mark.parametrize("mode", ["manual", "intercept"])
def test_only_nearest_dispatches_escalate(mode):
    assert lc.apply("sent", "ack_deadline", mode=mode).effects == (FREE_UNIT, NOTIFY_BADGE, ALERT)
    assert lc.apply("en_route", "declined", mode=mode).effects == (FREE_UNIT,)


@pytest.mark.parametrize(
    ("state", "trigger"), [("nowhere", "cancel"), ("sent", "teleport")], ids=["state", "trigger"]
)
def test_unknown_names_are_refused(state, trigger):
    with pytest.raises(lc.Refused, match="unknown"):
        lc.apply(state, trigger)


def test_every_final_state_is_final():
    for state in lc.FINAL:
        moves = [t for t in TRIGGERS if lc.allowed(state, t) and lc.apply(state, t).changed]
        assert moves == [], state


@pytest.mark.parametrize("state", ["sent", "acknowledged", "en_route", "on_scene"])
@pytest.mark.parametrize("mode", ["nearest", "manual", "intercept"])
def test_a_diverted_unit_is_told_keeps_busy_and_its_event_waits_again(state, mode):
    step = lc.apply(state, "divert", mode=mode)
    assert step.state == "diverted" and step.changed
    assert FREE_UNIT not in step.effects  # no waiting event may take the unit before it is sent on
    assert step.effects == (NOTIFY_BADGE, REQUEUE, ALERT)


@pytest.mark.parametrize("state", ["proposed", "resolved", "declined", "cancelled", "timed_out", "diverted"])
def test_only_a_unit_under_way_can_be_diverted(state):
    with pytest.raises(lc.Refused, match="only a unit under way can be diverted"):
        lc.apply(state, "divert")


@pytest.mark.parametrize("answer", ["acknowledged", "en_route", "on_scene", "resolved", "declined"])
def test_a_diverted_dispatch_hears_no_answer(answer):
    with pytest.raises(lc.Refused, match="already diverted"):
        lc.apply("diverted", answer)
