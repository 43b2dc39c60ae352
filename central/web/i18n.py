"""Languages and time on the page: Flask-Babel with the catalogues in ``translations/`` (Russian, Kazakh,
English), the account's language (its preference, else the site's default), and every time shown in the
site's time zone (``[site] timezone``). The API keeps ISO-8601 with its offset; only what people read is local.

Scripts get their words from the page: ``script_messages()`` is every ``T("...")`` in ``static/*.js``, translated
into the reader's language, written into base.html as a JSON block that app.js reads.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from flask import Flask, g, session
from flask_babel import Babel, get_locale, get_translations, gettext, lazy_gettext

from kuzet.central import alerts
from kuzet.central.auth import preferences
from kuzet.central.web.objects import OBJECTS
from kuzet.central.web.services import services
from kuzet.shared import timeutil

HERE = Path(__file__).resolve().parent
LANGUAGES = {"ru": "Русский", "kk": "Қазақша", "en": "English"}  # each language names itself

# Words for the states the page shows, one place for templates, scripts and CSV.
EVENT_STATUSES = {
    "new": lazy_gettext("New"),
    "acknowledged": lazy_gettext("Acknowledged"),
    "assigned": lazy_gettext("Assigned"),
    "dispatched": lazy_gettext("Dispatched"),
    "closed": lazy_gettext("Closed"),
}
SEVERITIES = {
    "critical": lazy_gettext("Critical"),
    "high": lazy_gettext("High"),
    "medium": lazy_gettext("Medium"),
    "low": lazy_gettext("Low"),
    "info": lazy_gettext("Info"),
}
DISPATCH_STATES = {
    "proposed": lazy_gettext("Proposed"),
    "sent": lazy_gettext("Sent"),
    "acknowledged": lazy_gettext("Acknowledged"),
    "en_route": lazy_gettext("En route"),
    "on_scene": lazy_gettext("On scene"),
    "resolved": lazy_gettext("Resolved"),
    "declined": lazy_gettext("Declined"),
    "cancelled": lazy_gettext("Cancelled"),
    "timed_out": lazy_gettext("Timed out"),
    "diverted": lazy_gettext("Diverted"),
    "confirmed": lazy_gettext("Confirmed"),  # a history entry only: an operator confirmed the proposal
}
DISPATCH_MODES = {
    "nearest": lazy_gettext("nearest unit"),
    "intercept": lazy_gettext("intercept"),
    "manual": lazy_gettext("chosen by an operator"),
}
DUTY_STATES = {
    "available": lazy_gettext("Available"),
    "en_route": lazy_gettext("En route"),
    "on_scene": lazy_gettext("On scene"),
    "busy": lazy_gettext("Busy"),
    "off_duty": lazy_gettext("Off duty"),
}
EVENT_TYPES = {
    "zone_enter": lazy_gettext("Zone entry"),
    "zone_exit": lazy_gettext("Zone exit"),
    "loitering": lazy_gettext("Loitering"),
    "line_crossing": lazy_gettext("Line crossing"),
    "crowd": lazy_gettext("Crowd"),
    "no_stopping": lazy_gettext("No stopping"),
    "object_left": lazy_gettext("Object left"),
    "running": lazy_gettext("Running"),
    "chase": lazy_gettext("Chase"),
    "person_down": lazy_gettext("Person down"),
    "repeated_stops": lazy_gettext("Repeated stops"),
    "watchlist_match": lazy_gettext("Watchlist match"),
    "panic": lazy_gettext("PANIC"),
    "manual": lazy_gettext("Manual"),
}
ROLES = {
    "operator": lazy_gettext("operator"),
    "supervisor": lazy_gettext("supervisor"),
    "technician": lazy_gettext("technician"),
    "admin": lazy_gettext("administrator"),
}
STAT_GROUPS = {
    "type": lazy_gettext("Type"),
    "camera": lazy_gettext("Camera"),
    "zone": lazy_gettext("Zone"),
    "severity": lazy_gettext("Severity"),
}
EDGE_STATES = {
    "open": lazy_gettext("opened"),
    "update": lazy_gettext("update"),
    "closed": lazy_gettext("closed"),
}
CLIP_STATES = {
    "receiving": lazy_gettext("receiving"),
    "joining": lazy_gettext("being joined"),
    "verified": lazy_gettext("verified"),
    "failed": lazy_gettext("failed its check"),
    "abandoned": lazy_gettext("abandoned"),
    "lost": lazy_gettext("lost"),
    "expired": lazy_gettext("removed by retention"),
}
SHIFT_ENTRY_KINDS = {"note": lazy_gettext("Note"), "handover": lazy_gettext("Hand-over")}
# What an operator did to an incident (the audit log's actions), for "my incidents".
WORK_DONE = {
    "event.acknowledge": lazy_gettext("acknowledged"),
    "event.assign": lazy_gettext("assigned"),
    "event.dispatched": lazy_gettext("sent a patrol"),
    "event.close": lazy_gettext("closed"),
}
DEVICE_KINDS = {"camera": lazy_gettext("camera"), "badge": lazy_gettext("badge")}
MEDIA_KINDS = {"clip": lazy_gettext("clip"), "snapshot": lazy_gettext("snapshot")}
ALERT_LEVELS = {
    "info": lazy_gettext("Notice"),
    "warning": lazy_gettext("Warning"),
    "critical": lazy_gettext("Critical"),
}
DEVICE_STATES = {
    "online": lazy_gettext("online"),
    "offline": lazy_gettext("offline"),
    "revoked": lazy_gettext("revoked"),
}
LABELS = {
    "status": EVENT_STATUSES,
    "severity": SEVERITIES,
    "dispatch": DISPATCH_STATES,
    "mode": DISPATCH_MODES,
    "duty": DUTY_STATES,
    "type": EVENT_TYPES,
    "role": ROLES,
    "device": DEVICE_STATES,
    "kind": DEVICE_KINDS,
    "edge": EDGE_STATES,
    "clip": CLIP_STATES,
    "shift_entry": SHIFT_ENTRY_KINDS,
    "work": WORK_DONE,
    "object": OBJECTS,
    "media": MEDIA_KINDS,
    "level": ALERT_LEVELS,
}


def label(table: dict, value: str | None) -> str:
    """The word for a state (``label(EVENT_STATUSES, 'new')``); an unknown value is shown as it is."""
    if value is None:
        return "—"
    word = table.get(value)
    return str(word) if word is not None else value


def alert_text(row: dict) -> str:
    """An alert's words in the reader's language (its stored English for an alert without a known key)."""
    key = row.get("message_key")
    if key not in alerts.MESSAGES:
        return row.get("message") or ""
    return _alert_words(key, row.get("message_params") or {})


def evidence_finding(problem: dict) -> str:
    """A finding of a badge's evidence check (central/routing/evidence.py) in the reader's language where it
    is one of shared/evidence.py's (a ``code``), else as found."""
    key = f"evidence_{problem.get('code')}"
    if key not in alerts.MESSAGES:
        return problem.get("what") or ""
    return _alert_words(key, problem.get("params") or {})


def dispatch_note(entry: dict) -> str:
    """A dispatch log note in the reader's language (its stored English for a row from before keys)."""
    key = entry.get("detail_key")
    if key not in alerts.MESSAGES:
        return entry.get("detail") or ""
    return _alert_words(key, entry.get("detail_params") or {})


def with_notes(dispatches: list[dict]) -> list[dict]:
    """The dispatches with each log entry's note said in the reader's language ("note"; "detail": English)."""
    for dispatch in dispatches:
        for entry in dispatch.get("log") or []:
            entry["note"] = dispatch_note(entry)
    return dispatches


def _alert_words(key: str, params: dict) -> str:
    shown = {}
    for name, value in params.items():
        if isinstance(value, dict) and value.get("key") in alerts.MESSAGES:
            shown[name] = _alert_words(value["key"], value.get("params") or {})
        elif isinstance(value, str) and name in alerts.WORDS:
            shown[name] = label(LABELS[alerts.WORDS[name]], value)
        else:
            shown[name] = value
    return gettext(alerts.MESSAGES[key], **shown)


def problem_words(device: dict) -> list[str]:
    """What is wrong with a device (queries.device_health), in the reader's language."""
    return [_alert_words(p["key"], p["params"]) for p in device.get("problem_keys", [])]


def site_zone() -> ZoneInfo:
    return ZoneInfo(services().central.config.site.timezone)


def language() -> str:
    """The reader's language: the account's choice, else the one chosen on the log-in page, else the site's."""
    if "language" not in g:
        user = g.get("user")
        chosen = None
        if user is not None:
            chosen = preferences.get(services().central.db(), user.username).language
        chosen = chosen or session.get("language")
        g.language = chosen if chosen in LANGUAGES else services().central.config.site.language
    return g.language


def local(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    when = timeutil.from_wire(value) if isinstance(value, str) else value
    return when.astimezone(site_zone())


def short_time(value: str | None) -> str:
    """'2026-11-21T08:05:09.123Z' -> '21 нояб. 13:05:09' (site time zone, reader's language)."""
    try:
        when = local(value)
    except ValueError:
        return str(value)
    if when is None:
        return "—"
    return dates.format_datetime(when, "d MMM HH:mm:ss", locale=str(get_locale()))


def clock(value: str | datetime | None) -> str:
    """The time of day alone, in the site's zone: '13:05:09'."""
    when = local(value)
    return "—" if when is None else dates.format_time(when, "HH:mm:ss", locale=str(get_locale()))


def shift_span(shift) -> str:
    """A shift as people name it: '5 дек. 08:00–20:00' (its local start's day)."""
    locale = str(get_locale())
    start = dates.format_datetime(shift.start, "d MMM HH:mm", locale=locale)
    return f"{start}–{dates.format_time(shift.end, 'HH:mm', locale=locale)}"


def full_time(value: str | None) -> str:
    """With the year and the zone's offset: for exports and facts that go into a protocol."""
    when = local(value)
    if when is None:
        return ""
    return dates.format_datetime(when, "d MMMM y HH:mm:ss xxx", locale=str(get_locale()))


# Dates people type go in a plain text field in their own language's order: Chromium draws <input type=date>
# in the browser's language, not the page's (mm/dd/yyyy for a Russian operator on an English browser).
DAY_ENTRY = {"ru": "%d.%m.%Y", "kk": "%d.%m.%Y", "en": "%d/%m/%Y"}
# What a typed day may look like whatever the reader's language: day first, and ISO for links and API clients.
_DAY_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y")


def parse_typed(value: str, with_time: bool = False) -> datetime:
    """A date typed by a person ('05.12.2026', '05/12/2026' or '2026-12-05'), with a time after it if
    ``with_time`` allows one ('05.12.2026 13:05'; midnight without), as a naive datetime; ValueError otherwise."""
    value = " ".join(value.split())
    if with_time:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    day_and_time = [f"{day} %H:%M" for day in _DAY_FORMATS] if with_time else []
    for pattern in (*_DAY_FORMATS, *day_and_time):
        try:
            return datetime.strptime(value, pattern)
        except ValueError:
            continue
    raise ValueError(f"not a date: {value!r}")


def typed_day(value: datetime) -> str:
    """A day as the reader types it (the value a date field starts with)."""
    return value.strftime(DAY_ENTRY[language()])


def day_hint(with_time: bool = False) -> str:
    """How to type a date (and time), in the reader's words: 'дд.мм.гггг чч:мм'."""
    return gettext("dd.mm.yyyy hh:mm") if with_time else gettext("dd.mm.yyyy")


def number(value, digits: int = 0) -> str:
    return numbers.format_decimal(round(value, digits), locale=str(get_locale()))


# A script's words are T("...") calls with one double-quoted literal (inside template literals too, where
# Babel's own JavaScript extractor does not look); tests/central/test_translations.py refuses any other T( form.
SCRIPT_CALL = re.compile(r'\bT\(\s*"((?:[^"\\\n]|\\.)*)"')


# A count's words are N("%(n)s event", "%(n)s events", n): the reader's plural form of them (app.js).
SCRIPT_PLURAL = re.compile(r'\bN\(\s*"((?:[^"\\\n]|\\.)*)"\s*,\s*"((?:[^"\\\n]|\\.)*)"')
# Whole numbers that show each CLDR plural category (Intl.PluralRules' names) of our languages: the scripts
# count things, never in fractions.
_PLURAL_SAMPLES = (1, 2, 5, 0, 11, 21, 22, 25, 101)


def extract_script(fileobj, keywords, comment_tags, options):
    """A Babel extraction method (babel.cfg) for the page's scripts: every T("...") and N("...", "...")."""
    for line_number, line in enumerate(fileobj.read().decode("utf-8").splitlines(), start=1):
        for match in SCRIPT_CALL.finditer(line):
            yield line_number, None, json.loads(f'"{match.group(1)}"'), []
        for match in SCRIPT_PLURAL.finditer(line):
            forms = tuple(json.loads(f'"{group}"') for group in match.groups())
            yield line_number, "ngettext", forms, []


@functools.cache
def _script_messages() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Every ``T("...")`` and every ``N("...", "...")`` in the page's scripts, in the order found."""
    found: dict[str, None] = {}
    plurals: dict[tuple[str, str], None] = {}
    for path in sorted((HERE / "static").glob("*.js")):
        with path.open("rb") as file:
            for _line, function, message, _comments in extract_script(file, (), (), {}):
                if function == "ngettext":
                    plurals[message] = None
                else:
                    found[message] = None
    return tuple(found), tuple(plurals)


def script_msgids() -> tuple[str, ...]:
    return _script_messages()[0]


def script_plurals() -> dict[str, dict[str, str]]:
    """Each N("one", "many") of the scripts by its first form: its text for each plural category of the
    reader's language (Intl.PluralRules' "one", "few", "many", "other"), from the catalogue's plural forms."""
    rule = Locale.parse(language()).plural_form
    samples: dict[str, float] = {}
    for sample in _PLURAL_SAMPLES:
        samples.setdefault(rule(sample), sample)
    translations = get_translations()
    return {
        one: {category: translations.ungettext(one, many, sample) for category, sample in samples.items()}
        for one, many in _script_messages()[1]
    }


def script_messages() -> dict:
    """The scripts' dictionary in the reader's language, with the site's zone and the reader's locale."""
    return {
        "locale": {"kk": "kk-KZ", "ru": "ru-RU", "en": "en-GB"}[language()],
        "timeZone": services().central.config.site.timezone,
        "words": {msgid: gettext(msgid) for msgid in script_msgids()},
        "plurals": script_plurals(),
        "labels": {name: {key: str(word) for key, word in table.items()} for name, table in LABELS.items()},
    }


def install(app: Flask) -> None:
    Babel(
        app,
        locale_selector=language,
        timezone_selector=lambda: services().central.config.site.timezone,
        default_translation_directories=str(HERE / "translations"),
    )
    app.jinja_env.filters["short_time"] = short_time
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["shift_span"] = shift_span
    app.jinja_env.globals.update(
        languages=LANGUAGES,
        current_language=language,
        script_messages=script_messages,
        word=lambda kind, value: label(LABELS[kind], value),  # {{ word('status', event.status) }}
        alert_text=alert_text,
        day_hint=day_hint,
        problem_words=problem_words,
    )
