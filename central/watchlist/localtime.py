"""The watchlist's times as the site reads them, in central's ``[site] timezone`` (Kazakhstan: UTC+5)."""

from __future__ import annotations

from datetime import datetime

from kuzet.central.web.i18n import site_zone, typed_day
from kuzet.shared import timeutil


def site_time(value: str | datetime | None) -> str:
    """A wire time (UTC) as the site's local date and time."""
    if not value:
        return "—"
    moment = timeutil.from_wire(value) if isinstance(value, str) else value
    return moment.astimezone(site_zone()).strftime("%d.%m.%Y %H:%M")


def site_date(value: str) -> str:
    """A wire time (UTC) as the site's local date, as the reader types one (31.12.2026; i18n.typed_day)."""
    return typed_day(timeutil.from_wire(value).astimezone(site_zone()))


def install(state) -> None:
    """Blueprint.record_once hook: the time filters of the watchlist's templates."""
    state.app.jinja_env.filters["site_time"] = site_time
    state.app.jinja_env.filters["site_date"] = site_date
