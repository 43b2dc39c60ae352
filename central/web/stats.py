"""Statistics: events per hour and per day by type, camera, zone or severity, as charts, and CSV export
(the CSV itself is served by the API, ``/api/v1/stats.csv``)."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from kuzet.central.store import queries, shifts
from kuzet.central.web import charts, i18n
from kuzet.central.web.auth import require
from kuzet.central.web.services import services
from kuzet.central.web.views import central
from kuzet.shared import timeutil

blueprint = Blueprint("stats", __name__)

RESPONSE_SHIFTS = 14  # a week of two 12-hour shifts
MEASURE_NAMES = {
    "to_acknowledge": lazy_gettext("To acknowledge"),
    "to_dispatch": lazy_gettext("To dispatch"),
    "to_arrival": lazy_gettext("To arrival"),
    "to_resolution": lazy_gettext("To resolution"),
}


@blueprint.get("/stats")
@require("stats.view")
def page():
    by = request.args.get("by", "type")
    if by not in queries.STAT_GROUPS:
        abort(400, _("'by' is one of %(choices)s.", choices=", ".join(queries.STAT_GROUPS)))
    db = central().db()
    panels = []
    names = {
        **{"type": i18n.EVENT_TYPES, "severity": i18n.SEVERITIES}.get(by, {}),
        charts.OTHER: _("other"),  # the groups beyond the chart's colours, summed
        "(none)": _("(no zone)"),
    }
    for period, title in (
        ("hour", _("Events per hour, last 24 hours")),
        ("day", _("Events per day, last 14 days")),
    ):
        counts = queries.event_counts(db, period, by, zone=i18n.site_zone())
        series = {
            i18n.label(names, group): values
            for group, values in charts.top_groups(counts["counts"], counts["groups"]).items()
        }
        panels.append(
            {
                "period": period,
                "title": title,
                "total": counts["total"],
                "chart": charts.stacked_bars(counts["buckets"], series, title),
                "legend": [
                    (group, charts.colour(i), sum(values)) for i, (group, values) in enumerate(series.items())
                ],
            }
        )
    return render_template(
        "stats.html",
        panels=panels,
        by=by,
        groups={key: i18n.label(i18n.STAT_GROUPS, key) for key in queries.STAT_GROUPS},
        site_timezone=central().config.site.timezone,
        measures={key: str(name) for key, name in MEASURE_NAMES.items()},
        duration=duration,
        **_response_times(),
    )


def _response_times() -> dict:
    """Response times of the last ``RESPONSE_SHIFTS`` shifts: per shift, and per unit over all of them."""
    config = central().config.site
    recent = shifts.recent(timeutil.utc_now(), config.shifts, i18n.site_zone(), RESPONSE_SHIFTS)
    # The ended shifts' figures are kept between loads (central.store.response_cache).
    by_shift, by_unit = services().response_times.figures(central().db(), recent)
    return {"by_shift": by_shift, "by_unit": by_unit, "since_shift": recent[-1]}


def duration(seconds: float | None) -> str:
    """'4:05' (minutes:seconds), '1:02:05' from an hour on; '—' for none."""
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@blueprint.get("/stats/response-times.csv")
@require("stats.view")
def response_times_csv():
    """Response times per shift (``by=shift``) or per unit (``by=unit``) for a spreadsheet: the reader's
    language, shifts named by their local start in the site's zone, seconds as whole numbers, with a
    byte-order mark so that spreadsheet programs read the Cyrillic right."""
    by = request.args.get("by", "shift")
    if by not in ("shift", "unit"):
        abort(400, _("'by' is one of %(choices)s.", choices="shift, unit"))
    figures = _response_times()
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    first = (
        [_("Shift start (%(zone)s)", zone=central().config.site.timezone), _("Incidents")]
        if by == "shift"
        else [_("Unit"), _("Dispatches")]
    )
    columns = [
        header % {"measure": name}
        for name in MEASURE_NAMES.values()
        for header in (
            _("%(measure)s, median (s)"),
            _("%(measure)s, 90th percentile (s)"),
            _("%(measure)s, counted"),
        )
    ]
    writer.writerow(first + columns)
    rows = (
        [(shift.key, summary) for shift, summary in figures["by_shift"]]
        if by == "shift"
        else list(figures["by_unit"].items())
    )
    for name, summary in rows:
        cells = [name, summary["count"] if summary else 0]
        for measure in MEASURE_NAMES:
            found = (summary or {}).get(measure)
            cells += [round(found["median"]), round(found["p90"]), found["n"]] if found else ["", "", 0]
        writer.writerow(cells)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="kuzet-response-times-by-{by}.csv"'},
    )
