"""Statistics: events per hour and per day by type, camera, zone or severity, as charts, and CSV export
(the CSV itself is served by the API, ``/api/v1/stats.csv``)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from kuzet.central.store import queries
from kuzet.central.web import charts
from kuzet.central.web.auth import require
from kuzet.central.web.views import central

blueprint = Blueprint("stats", __name__)


@blueprint.get("/stats")
@require("stats.view")
def page():
    by = request.args.get("by", "type")
    if by not in queries.STAT_GROUPS:
        abort(400, f"by is one of {', '.join(queries.STAT_GROUPS)}")
    db = central().db()
    panels = []
    for period, title in (
        ("hour", "Events per hour, last 24 hours"),
        ("day", "Events per day, last 14 days"),
    ):
        counts = queries.event_counts(db, period, by)
        series = charts.top_groups(counts["counts"], counts["groups"])
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
    return render_template("stats.html", panels=panels, by=by, groups=list(queries.STAT_GROUPS))
