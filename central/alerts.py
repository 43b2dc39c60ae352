"""Alerts for the operators: no patrol free, a dispatch escalated or not confirmed, a unit gone offline on a
dispatch, broken evidence. Each is stored, so an alert raised while nobody looked at the page is not lost with
its toast. Warnings and critical alerts stay open until an operator acknowledges them (audited); "info" ones
(a proposal to confirm) are notices, kept in the history but never waiting for anyone.

An alert's words are stored as a message key and its parameters (``say("no_free_unit", ...)``), so that each
reader sees them in their own language (central/web/i18n.py ``alert_text``); ``message`` keeps the English, for
the API and the logs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.shared import timeutil

LEVELS = ("info", "warning", "critical")
_COLUMNS = (
    "id",
    "at",
    "level",
    "message",
    "event_id",
    "dispatch_id",
    "device",
    "acknowledged_at",
    "acknowledged_by",
    "condition",
    "count",
    "last_at",
    "message_key",
    "message_params",
)
# What one device's messages may raise: at most this many new alerts a minute; beyond it they are counted in one
# open "too many alerts" alert of the device (see ``raise_for_device``).
DEVICE_ALERTS_PER_MINUTE = 10
RATE_LIMITED = "rate_limited"


_OPEN = "acknowledged_at is null and level != 'info'"


def N_(text: str) -> str:
    """Marks words for the translators (one of pybabel's default keywords); they are translated when shown."""
    return text


# Every alert's words, in English, by key. A parameter is a state or kind (``WORDS``), shown as a word in the
# reader's language, or verbatim (``VERBATIM``), or itself a message ({"key", "params"}: ``NESTED``).
MESSAGES = {
    "unit_offline_on_dispatch": N_("%(unit)s went offline during dispatch %(dispatch)s"),
    "event_without_position": N_(
        "%(event_type)s event from %(device)s has no position: assign a unit by hand"
    ),
    "nobody_took_event": N_("%(count)s units did not take the %(event_type)s event: assign a unit by hand"),
    "no_free_unit": N_("no free unit for the %(severity)s %(event_type)s event; waiting for one"),
    "no_unit_to_intercept": N_("no free unit within range to intercept %(event_type)s"),
    "confirm_unit": N_("confirm %(unit)s for the %(event_type)s event (%(metres)s m)"),
    "answer_refused": N_("%(device)s: %(why)s"),
    "answer_unknown_dispatch": N_("%(state)s for unknown dispatch %(dispatch)s"),
    "answer_other_unit": N_("%(state)s for dispatch %(dispatch)s, sent to %(unit)s"),
    "answer_going_back": N_("%(state)s after %(current)s for dispatch %(dispatch)s"),
    "answer_too_late": N_("%(state)s for dispatch %(dispatch)s, already %(current)s"),
    "unit_declined": N_("%(device)s declined: %(reason)s"),
    "not_acknowledged": N_("%(unit)s (%(online)s) did not acknowledge within %(seconds)s s"),
    "nobody_confirmed": N_(
        "nobody confirmed sending %(unit)s within %(seconds)s s: confirm it or assign a unit"
    ),
    "sent_by_policy": N_("nobody confirmed within %(seconds)s s: %(unit)s was sent"),
    "confirmed_unit_busy": N_(
        "nobody confirmed within %(seconds)s s and %(unit)s is no longer free: sent the nearest free unit"
    ),
    "no_event_to_reroute": N_("%(why)s; no event to re-route"),
    "escalating": N_("%(why)s; escalating to the next unit"),
    "evidence_chain_broken": N_("evidence from %(device)s, segment %(index)s: %(problem)s"),
    "revoked_on_dispatch": N_("%(why)s, while on dispatch %(dispatch)s: the event goes to the next unit"),
    "no_position_to_reroute": N_("no position to send another unit to: assign one by hand"),
    "taken_off_event": N_("%(unit)s was taken off the event: assign another unit by hand"),
    "watchlist_too_large": N_(
        "The watchlist (%(rows)d photos) is too large to send to this camera; it keeps the one it holds "
        "until that lapses. Remove entries or photos."
    ),
    "diverted_requeued": N_(
        "%(unit)s was diverted from the %(left_severity)s %(left_type)s event to the %(severity)s %(event_type)s "
        "event; the %(left_type)s event waits for the next free unit"
    ),
    "diverted_others_stay": N_(
        "%(unit)s was diverted from the %(left_severity)s %(left_type)s event to the %(severity)s %(event_type)s "
        "event; the %(left_type)s event keeps its other units"
    ),
    "too_many_alerts": N_("%(device)s raises more than %(limit)s alerts a minute; the latest: %(latest)s"),
    "store_failing": N_(
        "Central could not write %(what)s (%(error)s); meanwhile %(held)s. "
        "Free space or fix the disk: ingest resumes by itself."
    ),
    "media_altered": N_("evidence %(kind)s %(sha256)s of %(owner)s: %(problem)s"),
    # Dispatch log notes (routing writes them; dispatch_log detail_key and detail_params).
    "note_proposed": N_("%(unit)s at %(metres)s m"),
    "note_sent": N_("%(mode)s to %(unit)s, %(metres)s m, attempt %(attempt)s"),
    "note_sent_again": N_("sent again: the badge is back online, %(seconds)s s left to acknowledge"),
    "note_sent_by_policy": N_("nobody confirmed within %(seconds)s s; sent by policy"),
    "note_not_confirmed_busy": N_("not confirmed within %(seconds)s s; %(unit)s no longer free"),
    "note_no_acknowledgement": N_("no acknowledgement in %(seconds)s s"),
    "note_superseded_manual": N_("superseded by a manual assignment"),
    "note_superseded_nearest": N_("superseded: the operator sent the nearest unit"),
    "note_superseded_diverted": N_("superseded: %(unit)s was diverted here"),
    "note_superseded_intercept": N_("superseded by an intercept"),
    "note_diverted": N_("diverted to the %(severity)s %(event_type)s event %(event)s"),
    "note_other_resolved": N_("%(device)s resolved the event"),
    "note_event_closed": N_("the event was closed: %(note)s"),
    "note_event_closed_by": N_("event closed by %(actor)s: %(note)s"),
    # A badge's evidence chain, as shared/evidence.py FINDINGS finds it ("evidence_" + its code).
    "evidence_altered": N_("its chain hash does not match its own fields (the record was altered)"),
    "evidence_late_start": N_("the chain starts at index %(index)s: earlier segments are missing"),
    "evidence_out_of_order": N_("index %(index)s follows %(previous)s: a segment is missing or out of order"),
    "evidence_unlinked": N_("it does not link to the segment before it (a segment was replaced or removed)"),
    "evidence_overlaps": N_("it starts before the previous segment ended"),
    "evidence_recording_missing": N_("its recording is missing"),
    "evidence_recording_edited": N_("its recording was edited (SHA-256 differs)"),
    # Parts of other alerts' words (parameters that are a Text).
    "device_revoked": N_("%(device)s was revoked"),
    "device_revoked_because": N_("%(device)s was revoked: %(reason)s"),
    "the_database": N_("the database"),
    "the_media_folder": N_("the media folder"),
    "held_at_broker": N_("messages from the devices wait, unacknowledged, at the broker and on the devices"),
    "held_media": N_(
        "snapshots are kept in the database and clips in the spool, and written when it takes them again; "
        "events are stored as usual"
    ),
    "media_missing": N_("the file is missing"),
    "media_bytes_altered": N_("the file was altered on disk: its bytes no longer match its SHA-256"),
    "object_altered": N_("the object was altered in the object store: its bytes no longer match its SHA-256"),
    # What is wrong with a device (central/store/queries.py device_health): the devices' pages and toasts.
    "device_revoked_state": N_("revoked"),
    "device_offline": N_("offline"),
    "device_hot": N_("hot: %(celsius)s °C"),
    "device_disk_full": N_("disk nearly full: %(free_mb)s MB free"),
    "device_outbox_backlog": N_("outbox backlog: %(count)s messages"),
    "device_battery_low": N_("battery low: %(percent)s%%"),
    "device_source": N_("video source: %(source_state)s"),
}
# Parameters that carry a state or a kind, by the table of words that names them (central/web/i18n.py LABELS):
# the reader sees «Высокая», not "high".
WORDS = {
    "event_type": "type",
    "left_type": "type",
    "severity": "severity",
    "left_severity": "severity",
    "state": "dispatch",
    "current": "dispatch",
    "online": "device",
    "kind": "media",
    "mode": "mode",
}
# Parameters shown as they are: names and ids, numbers, and what a person or the system wrote in its own words
# (an officer's reason, the operating system's error).
VERBATIM = frozenset(
    {"unit", "device", "dispatch", "count", "seconds", "metres", "index", "previous", "sha256", "owner"}
    | {"rows", "limit", "reason", "error", "celsius", "free_mb", "percent", "source_state"}
    | {"attempt", "event", "actor", "note"}
)
# Parameters that are another alert's words (a Text), whose own parameters follow the same rules: "problem" is
# a badge's evidence finding (``evidence_*``) or a media check.
NESTED = frozenset({"why", "latest", "what", "held", "problem"})


@dataclass(frozen=True)
class Text:
    """An alert's words: a key of ``MESSAGES`` and its parameters (numbers, strings or other Texts)."""

    key: str
    params: dict = field(default_factory=dict)

    @property
    def english(self) -> str:
        return MESSAGES[self.key] % {
            name: value.english if isinstance(value, Text) else value for name, value in self.params.items()
        }

    def stored(self) -> dict:
        return {
            name: {"key": value.key, "params": value.stored()} if isinstance(value, Text) else value
            for name, value in self.params.items()
        }


def english(words: Text | str) -> str:
    """Words stored as a Text or a plain string, in English (the API, the audit, what a badge is told)."""
    return words.english if isinstance(words, Text) else words


def say(key: str, **params) -> Text:
    """The alert text ``key`` with ``params``; a KeyError at once for an unknown key or a missing parameter."""
    text = Text(key, params)
    text.english  # noqa: B018 -- formats once, so that a wrong call fails where it is made
    for name, value in params.items():
        if name in WORDS and not isinstance(value, str):
            raise TypeError(f"alert {key!r}: {name} is a {WORDS[name]} key, not {value!r}")
    return text


class AlertError(LookupError):
    pass


def add(
    db,
    level: str,
    message: Text | str,
    *,
    event_id: str | None = None,
    dispatch_id: str | None = None,
    device: str | None = None,
) -> dict:
    """Store an alert (inside the caller's transaction, if any); returns its row. A plain string is stored
    as it is (shown in every language alike)."""
    if level not in LEVELS:
        raise ValueError(f"alert level {level!r} is not one of {LEVELS}")
    at = timeutil.now_wire()
    english, key, params = stored_columns(message)
    cursor = portable.execute(
        db,
        "insert into alerts (at, level, message, event_id, dispatch_id, device, count, last_at,"
        " message_key, message_params) values (?, ?, ?, ?, ?, ?, 1, ?, ?, ?) returning id",
        [at, level, english, event_id, dispatch_id, device, at, key, params],
    )
    return get(db, cursor.fetchone()[0])


def stored_columns(message: Text | str) -> tuple[str, str | None, str | None]:
    """(the English, the key, the parameters as JSON) to store words in; a plain string has neither key nor
    parameters (shown as it is in every language)."""
    if isinstance(message, Text):
        return message.english, message.key, json.dumps(message.stored(), ensure_ascii=False)
    return message, None, None


def raise_for_device(
    db,
    level: str,
    message: Text | str,
    device: str,
    condition: str,
    *,
    event_id: str | None = None,
    dispatch_id: str | None = None,
) -> dict:
    """An alert a device's message raised (inside the caller's transaction): one open alert per (device,
    condition), whose ``count`` and ``last_at`` (and message, the latest) grow with each repeat, and at most
    ``DEVICE_ALERTS_PER_MINUTE`` new ones a minute per device; the rest are counted in the device's open
    ``rate_limited`` alert. A device sending nonsense over and over cannot bury the operators' other alerts."""
    if level not in LEVELS:
        raise ValueError(f"alert level {level!r} is not one of {LEVELS}")
    now = timeutil.now_wire()
    if _bump(db, device, condition, message, now):
        return _open(db, device, condition)
    minute_ago = timeutil.to_wire(timeutil.utc_now() - timedelta(minutes=1))
    recent = portable.execute(
        db,
        "select count(*) from alerts where device = ? and condition is not null and at >= ?",
        [device, minute_ago],
    ).fetchone()[0]
    if recent >= DEVICE_ALERTS_PER_MINUTE:
        condition, level = RATE_LIMITED, "warning"
        message = say("too_many_alerts", device=device, limit=DEVICE_ALERTS_PER_MINUTE, latest=message)
        if _bump(db, device, condition, message, now):
            return _open(db, device, condition)
    row = add(db, level, message, event_id=event_id, dispatch_id=dispatch_id, device=device)
    portable.execute(db, "update alerts set condition = ? where id = ?", [condition, row["id"]])
    return {**row, "condition": condition}


def _bump(db, device: str, condition: str, message: Text | str, now: str) -> bool:
    """Count a repeat into the open alert of (device, condition); False if there is none."""
    english, key, params = stored_columns(message)
    cursor = portable.execute(
        db,
        "update alerts set count = coalesce(count, 1) + 1, last_at = ?, message = ?, message_key = ?,"
        f" message_params = ? where device = ? and condition = ? and {_OPEN}",
        [now, english, key, params, device, condition],
    )
    return cursor.rowcount > 0


def _open(db, device: str, condition: str) -> dict:
    row = portable.execute(
        db,
        f"select {', '.join(_COLUMNS)} from alerts where device = ? and condition = ? and {_OPEN}"
        " order by id desc limit 1",
        [device, condition],
    ).fetchone()
    return _row(row)


def _row(values) -> dict:
    return parsed_params(dict(zip(_COLUMNS, values, strict=True)), "message_params")


def parsed_params(row: dict, column: str) -> dict:
    """The row with its stored parameters (JSON) read back; {} where there are none."""
    row[column] = json.loads(row[column]) if row[column] else {}
    return row


def acknowledge(db, alert_id: int, actor: str) -> dict:
    """Mark the alert seen and dealt with by ``actor``; acknowledging twice keeps the first."""
    with audit.transaction(db):
        row = get(db, alert_id)
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        if row["acknowledged_at"] is None:
            portable.execute(
                db,
                "update alerts set acknowledged_at = ?, acknowledged_by = ? where id = ?",
                [timeutil.now_wire(), actor, alert_id],
            )
            audit.append(db, actor, "alert.acknowledge", f"alert:{alert_id}", {"message": row["message"]})
    return get(db, alert_id)


def get(db, alert_id: int) -> dict | None:
    row = portable.execute(
        db, f"select {', '.join(_COLUMNS)} from alerts where id = ?", [alert_id]
    ).fetchone()
    return _row(row) if row else None


def listing(db, open_only: bool = True, limit: int = 200) -> list[dict]:
    """Newest first; ``open_only``: warnings and critical alerts not acknowledged yet."""
    where = f"where {_OPEN}" if open_only else ""
    rows = portable.execute(
        db, f"select {', '.join(_COLUMNS)} from alerts {where} order by id desc limit ?", [limit]
    )
    return [_row(row) for row in rows]


def open_count(db) -> int:
    return portable.execute(db, f"select count(*) from alerts where {_OPEN}").fetchone()[0]
