"""Who may say what: every message kind is accepted only from the kinds of device that send it, and only from
devices central knows.

The broker's ACL stops a device from writing under another's id, but not from writing any kind under its own:
a street camera's certificate could publish a ``location`` (and become a patrol unit that is sent dispatches),
an ``evidence`` record or a panic, and any certificate the CA signed that was never registered (the
technician's ``provision-tool``, a device flashed but never registered) could publish anything. Ingest asks
``refuse_unauthorised`` after decoding each batch; what it refuses is dead-lettered with the reason (cause
``unauthorised``) and goes no further: not stored, not handed to routing.

A device's kind is the one it was registered with (``registry.register``), never what its own heartbeat
claims. An unregistered device is refused, unless ``[ingest] accept_unregistered`` is on (the demo, tests, a
bench without provisioning): then it is listed as unregistered and checked against the kind its first
heartbeat declared (until it sends one, any kind of message is taken from it). Names that belong to programs
rather than devices (``central``, ``provision-tool``...) are refused always.
"""

from __future__ import annotations

from collections.abc import Iterable

from kuzet.central.store import portable
from kuzet.shared import topics
from kuzet.shared.messages import Envelope

CAMERA, BADGE = "camera", "badge"
BOTH = (CAMERA, BADGE)

# {message kind: the device kinds that may send it}. Events, clips and clip_lost are narrowed further by
# ``senders``: a badge's only event is its panic, a camera's never is; a badge's clips are its evidence.
SENDERS: dict[str, tuple[str, ...]] = {
    "event": BOTH,
    "snapshot": (CAMERA,),
    "clip": BOTH,
    "clip_lost": BOTH,
    "status": BOTH,
    "availability": BOTH,
    "command_result": BOTH,
    "live": BOTH,
    "location": (BADGE,),
    "dispatch_state": (BADGE,),
    "evidence": (BADGE,),
}
assert set(SENDERS) == set(topics.UP_KINDS)

UNREGISTERED = "device is not registered (register it with 'kuzet provision device', or set [ingest] accept_unregistered)"


def senders(message: Envelope) -> tuple[str, ...]:
    """The device kinds that may send this message."""
    kind = message.type
    if kind == "event":
        return (BADGE,) if message.event_type == "panic" else (CAMERA,)
    if kind in ("clip", "clip_lost"):
        return (BADGE,) if message.purpose == "evidence" else (CAMERA,)
    if kind == "status":
        return (message.kind,) if message.kind in BOTH else ()
    return SENDERS[kind]


def reason(
    message: Envelope, device: tuple[str | None, str | None] | None, accept_unregistered: bool
) -> str | None:
    """Why ``message`` is refused, or None. ``device`` is (kind, registered_at) as central has it, None when
    central has never heard of the device."""
    if topics.is_reserved(message.device):
        return f"{message.device!r} is a program's identity, not a device's: it sends nothing"
    kind, registered_at = device or (None, None)
    if not registered_at and not accept_unregistered:
        return UNREGISTERED
    allowed = senders(message)
    if kind is None:  # unregistered and no heartbeat yet (accept_unregistered): nothing to check against
        return None
    if kind not in allowed:
        what = message.type if message.type != "event" else f"{message.event_type} event"
        if message.type in ("clip", "clip_lost"):
            what = f"{message.purpose} {message.type}"
        may = " or ".join(allowed) if allowed else "no device"
        return f"a {kind} may not send {what} (only a {may} may)"
    return None


def _lookup(conn, sql: str, keys: Iterable[str]) -> dict[str, tuple]:
    """{first column: the rest} of ``sql`` (``... IN ({})``) over ``keys``, 500 at a time."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, tuple] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        cursor = portable.execute(conn, sql.format(", ".join("?" * len(chunk))), chunk)
        found.update((row[0], tuple(row[1:])) for row in cursor)
    return found


def _not_its_event(event_id: str, owner: str, message: Envelope) -> str:
    return f"event {event_id} is {owner}'s: a {message.type} from {message.device} may not change it"


def event_owners(conn, messages: Iterable[Envelope]) -> dict[str, str]:
    """{event id: the device whose event it is} of the stored events these media messages name (one query
    for a batch's snapshots and clip chunks)."""
    names = {message.event_id for message in messages if getattr(message, "event_id", None) is not None}
    found = _lookup(conn, "SELECT event_id, device FROM events WHERE event_id IN ({})", names)
    return {event_id: row[0] for event_id, row in found.items()}


def foreign_event(owners: dict[str, str], message: Envelope) -> str | None:
    """Why a snapshot, clip chunk or clip_lost may not attach to the event it names (another device's), or
    None; ``owners`` from ``event_owners``. Media attach only to the sender's own events: a badge learns
    camera events' ids from its dispatches, and one camera could otherwise replace another's evidence."""
    event_id = getattr(message, "event_id", None)
    owner = owners.get(event_id) if event_id is not None else None
    return _not_its_event(event_id, owner, message) if owner and owner != message.device else None


def refuse_unauthorised(conn, valid: list, refused: list, accept_unregistered: bool, known: dict) -> list:
    """Move to ``refused`` (as (incoming, reason, "unauthorised")) the messages their device may not send, and
    events that re-use another device's event id; returns the rest. ``valid`` holds ingest's decoded messages
    (``.message``, ``.incoming``); ``known`` the rows central has of their devices (``devices.of_batch``)."""
    devices = {device: (row.kind, row.registered_at) for device, row in known.items()}
    owners = _lookup(
        conn,
        "SELECT event_id, device FROM events WHERE event_id IN ({})",
        {item.message.event_id for item in valid if item.message.type == "event"},
    )
    kept = []
    for item in valid:
        message = item.message
        why = reason(message, devices.get(message.device), accept_unregistered)
        if why is None and message.type == "event":
            owner = owners.get(message.event_id, (message.device,))[0]
            why = _not_its_event(message.event_id, owner, message) if owner != message.device else None
        if why is None:
            kept.append(item)
        else:
            refused.append((item.incoming, why, "unauthorised"))
    return kept
