"""The one place the watchlist's words pass through for translation.

``_`` and ``ngettext`` are identities here, marking every word an operator reads; Flask-Babel replaces this
module when it is merged (translations_ru_kk.po-fragment holds the Russian and Kazakh). Times are shown in the
site's time zone (Kazakhstan, UTC+5).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kuzet.shared import timeutil

SITE_TIME_ZONE = ZoneInfo("Asia/Almaty")  # UTC+5 across Kazakhstan since March 2024


def _(text: str, **values) -> str:
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int, **values) -> str:
    return (singular if n == 1 else plural) % {"num": n, **values}


def site_time(value: str | datetime | None) -> str:
    """A wire time (UTC) as the site's local date and time."""
    if not value:
        return "—"
    moment = timeutil.from_wire(value) if isinstance(value, str) else value
    return moment.astimezone(SITE_TIME_ZONE).strftime("%d.%m.%Y %H:%M")


def site_date(value: str) -> str:
    """A wire time (UTC) as the site's local date, YYYY-MM-DD (as a date input takes it)."""
    return timeutil.from_wire(value).astimezone(SITE_TIME_ZONE).strftime("%Y-%m-%d")


def install(state) -> None:
    """Blueprint.record_once hook: the helpers as Jinja globals and the time filter."""
    env = state.app.jinja_env
    env.globals.setdefault("_", _)
    env.globals.setdefault("ngettext", ngettext)
    env.filters["site_time"] = site_time
    env.filters["site_date"] = site_date
