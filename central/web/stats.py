"""Statistics: events per hour and per day by type, camera, zone or severity, as charts, and CSV export
(the CSV itself is served by the API, ``/api/v1/stats.csv``)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _

from kuzet.central.store import queries
from kuzet.central.web import charts, i18n
from kuzet.central.web.auth import require
from kuzet.central.web.views import central

blueprint = Blueprint("stats", __name__)


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
    )
