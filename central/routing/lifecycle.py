"""The dispatch lifecycle, declared as data: which trigger moves a dispatch from which state to which, and
what the caller must then do. Pure: no database, no clock, no MQTT; ``apply`` answers or refuses.

States::

    proposed --confirm / confirm_overdue_send--> sent --badge acknowledged--> acknowledged --> en_route
        --> on_scene --> resolved            (a badge's answers only move forward; a repeat is a no-op)
    sent --ack_deadline--> timed_out         any active state --declined--> declined
    sent --back_online--> sent   (the badge came online again before acknowledging: the dispatch goes again)
    proposed or active --cancel / supersede / revoke / event_closed / other_resolved--> cancelled
    active --divert--> diverted   (an operator sends the busy unit to a more urgent event instead)

``resolved``, ``declined``, ``cancelled``, ``timed_out`` and ``diverted`` are final. Effects are names the caller carries
out, in the order given (``central.routing.dispatcher`` does, inside its transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- states -----------------------------------------------------------------------------------------------

PROPOSED = "proposed"
SENT = "sent"
ACKNOWLEDGED = "acknowledged"
EN_ROUTE = "en_route"
ON_SCENE = "on_scene"
RESOLVED = "resolved"
DECLINED = "declined"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
DIVERTED = "diverted"

ACTIVE = (SENT, ACKNOWLEDGED, EN_ROUTE, ON_SCENE)  # the unit is busy with it
UNDER_WAY = (PROPOSED, *ACTIVE)  # still to be stood down when its event is closed or its unit revoked
FINAL = (RESOLVED, DECLINED, CANCELLED, TIMED_OUT, DIVERTED)
STATES = (*UNDER_WAY, *FINAL)
PROGRESS = (SENT, ACKNOWLEDGED, EN_ROUTE, ON_SCENE, RESOLVED)  # the order a badge's answers follow

# --- triggers ---------------------------------------------------------------------------------------------

CONFIRM = "confirm"  # an operator confirms a proposal
CONFIRM_OVERDUE_ALERT = "confirm_overdue_alert"  # nobody confirmed in time; policy "alert"
CONFIRM_OVERDUE_SEND = "confirm_overdue_send"  # nobody confirmed in time; policy "send", the unit is free
CONFIRM_OVERDUE_BUSY = "confirm_overdue_busy"  # nobody confirmed in time; policy "send", the unit is not free
SUPERSEDE = "supersede"  # an operator assigned a unit by hand while a proposal was open
CANCEL = "cancel"  # an operator cancels (also the first half of a reassignment)
REVOKE = "revoke"  # the unit's device was revoked
EVENT_CLOSED = "event_closed"  # an operator closed the event
OTHER_RESOLVED = "other_resolved"  # another unit resolved the same event
ACK_DEADLINE = "ack_deadline"  # the badge did not acknowledge in time
DIVERT = "divert"  # an operator takes the busy unit off this dispatch for a more urgent event
BACK_ONLINE = "back_online"  # the badge said it is online again (another broker, or one that restarted)
BADGE_ANSWERS = (ACKNOWLEDGED, EN_ROUTE, ON_SCENE, RESOLVED, DECLINED)  # a badge's answer is its trigger
TRIGGERS = (
    CONFIRM,
    CONFIRM_OVERDUE_ALERT,
    CONFIRM_OVERDUE_SEND,
    CONFIRM_OVERDUE_BUSY,
    SUPERSEDE,
    CANCEL,
    REVOKE,
    EVENT_CLOSED,
    OTHER_RESOLVED,
    ACK_DEADLINE,
    DIVERT,
    BACK_ONLINE,
    *BADGE_ANSWERS,
)

# --- effects ----------------------------------------------------------------------------------------------

SEND = "send"  # send the dispatch to the badge, start its acknowledgement deadline, mark the unit busy
FREE_UNIT = "free_unit"  # the unit no longer holds this dispatch
NOTIFY_BADGE = "notify_badge"  # tell the badge the dispatch is no longer its own (cancel_dispatch)
ESCALATE = "escalate"  # send the event to the next nearest unit (a "nearest" dispatch only: see apply)
REROUTE = "reroute"  # the event goes to the next unit as its rule says, unless someone is still on it
ROUTE_NEXT = "route_next"  # send the nearest free unit now, without asking for confirmation
CLOSE_EVENT = "close_event"  # stand the event's other dispatches down and close the event
ALERT = "alert"  # tell the operators
REQUEUE = "requeue"  # the event waits again for the next free unit (sent one at once if one is free)
CLEAR_DEADLINE = "clear_deadline"  # alert once: the proposal keeps waiting for a confirmation
# Send the dispatch again, same id and deadline: a badge that moved to another broker, or whose broker restarted
# without its session, never got it; one that did keeps a single copy (its inbox is keyed by the id).
SEND_AGAIN = "send_again"
ESCALATING_MODES = ("nearest",)  # an intercept or a manual assignment is not escalated: operators decide


@dataclass(frozen=True)
class Step:
    state: str  # the state the dispatch is in afterwards
    effects: tuple[str, ...] = ()
    changed: bool = True  # False: nothing to record (a badge repeating its last answer)
    fallback: tuple[str, ...] = ()  # in place of ESCALATE for a dispatch whose mode is not escalated


class Refused(ValueError):
    """The trigger is not allowed in the dispatch's state; the message says why."""

    def __init__(self, state: str, trigger: str, why: str):
        super().__init__(why)
        self.state, self.trigger = state, trigger


_STAND_DOWN_PROPOSAL = Step(CANCELLED, (FREE_UNIT,))
_STAND_DOWN_ACTIVE = Step(CANCELLED, (FREE_UNIT, NOTIFY_BADGE))


def _table() -> dict[tuple[str, str], Step]:
    table = {
        (PROPOSED, CONFIRM): Step(SENT, (SEND,)),
        (PROPOSED, CONFIRM_OVERDUE_SEND): Step(SENT, (SEND, ALERT)),
        (PROPOSED, CONFIRM_OVERDUE_ALERT): Step(PROPOSED, (CLEAR_DEADLINE, ALERT), changed=False),
        (PROPOSED, CONFIRM_OVERDUE_BUSY): Step(CANCELLED, (FREE_UNIT, ROUTE_NEXT, ALERT)),
        (PROPOSED, SUPERSEDE): _STAND_DOWN_PROPOSAL,
        (PROPOSED, CANCEL): _STAND_DOWN_PROPOSAL,
        (PROPOSED, EVENT_CLOSED): _STAND_DOWN_PROPOSAL,
        (PROPOSED, OTHER_RESOLVED): _STAND_DOWN_PROPOSAL,
        (PROPOSED, REVOKE): Step(CANCELLED, (FREE_UNIT, ALERT, REROUTE)),
        (SENT, ACK_DEADLINE): Step(TIMED_OUT, (FREE_UNIT, NOTIFY_BADGE, ESCALATE), fallback=(ALERT,)),
        # Acknowledged or further on, the badge has it: nothing to do, and the trigger is refused.
        (SENT, BACK_ONLINE): Step(SENT, (SEND_AGAIN,), changed=False),
    }
    for state in ACTIVE:
        table[(state, CANCEL)] = _STAND_DOWN_ACTIVE
        table[(state, EVENT_CLOSED)] = _STAND_DOWN_ACTIVE
        table[(state, OTHER_RESOLVED)] = _STAND_DOWN_ACTIVE
        table[(state, REVOKE)] = Step(CANCELLED, (FREE_UNIT, NOTIFY_BADGE, ALERT, REROUTE))
        table[(state, DECLINED)] = Step(DECLINED, (FREE_UNIT, ESCALATE))
        # No FREE_UNIT: the unit goes straight to its new dispatch (the caller sends it), so no event waiting
        # for a unit can take it in between.
        table[(state, DIVERT)] = Step(DIVERTED, (NOTIFY_BADGE, REQUEUE, ALERT))
        for answer in PROGRESS[PROGRESS.index(state) :]:  # a badge's answers only move forward
            if answer not in BADGE_ANSWERS:
                continue  # "sent" is central's word, never a badge's
            if answer == state:
                table[(state, answer)] = Step(state, changed=False)  # a QoS 1 re-delivery
            elif answer == RESOLVED:
                table[(state, answer)] = Step(RESOLVED, (FREE_UNIT, CLOSE_EVENT))
            else:
                table[(state, answer)] = Step(answer)
    for state in (RESOLVED, DECLINED):
        table[(state, state)] = Step(state, changed=False)  # a badge repeating its last answer
    return table


TRANSITIONS: dict[tuple[str, str], Step] = _table()


def allowed(state: str, trigger: str) -> bool:
    return (state, trigger) in TRANSITIONS


def apply(state: str, trigger: str, mode: str = "nearest") -> Step:
    """The step ``trigger`` takes a dispatch in ``state`` (of ``mode``: nearest, manual, intercept) to, or
    ``Refused``. ESCALATE is for "nearest" dispatches; any other mode gets the step's ``fallback`` instead."""
    if state not in STATES:
        raise Refused(state, trigger, f"unknown dispatch state {state!r}")
    if trigger not in TRIGGERS:
        raise Refused(state, trigger, f"unknown trigger {trigger!r}")
    step = TRANSITIONS.get((state, trigger))
    if step is None:
        raise Refused(state, trigger, _why(state, trigger))
    if ESCALATE in step.effects and mode not in ESCALATING_MODES:
        effects = []
        for effect in step.effects:
            effects.extend(step.fallback if effect == ESCALATE else (effect,))
        return Step(step.state, tuple(effects), step.changed)
    return step


def _why(state: str, trigger: str) -> str:
    if trigger in BADGE_ANSWERS:
        if state in ACTIVE:
            return f"{trigger} after {state}"
        return f"{trigger}, already {state}"
    if trigger in (CONFIRM, CONFIRM_OVERDUE_ALERT, CONFIRM_OVERDUE_SEND, CONFIRM_OVERDUE_BUSY, SUPERSEDE):
        return f"the dispatch is {state}, not awaiting confirmation"
    if trigger == ACK_DEADLINE:
        return f"the dispatch is {state}, not waiting for an acknowledgement"
    if trigger == BACK_ONLINE:
        return f"the dispatch is {state}: only one not yet acknowledged is sent again"
    if trigger == DIVERT:
        return f"the dispatch is {state}: only a unit under way can be diverted"
    return f"the dispatch is already {state}"
