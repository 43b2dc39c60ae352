"""The alerts page folds repeats of one condition into one row with a count and one button for all of them:
an operator acknowledges 79 "no free unit" alerts with one click, not 79."""

from __future__ import annotations

import re

from support.web import csrf_token, login, make_central

from kuzet.central import alerts
from kuzet.central.web import create_app
from kuzet.central.web.alerts import fold


def test_repeats_of_one_condition_are_one_row_with_a_count(tmp_path):
    central = make_central(tmp_path)
    db = central.db()
    for n in range(79):
        alerts.add(
            db, "warning", "no free unit for the high loitering event; waiting for one", event_id=f"ev{n}"
        )
    alerts.add(db, "critical", "no free unit within range to intercept crowd")
    rows = fold(alerts.listing(db, open_only=True, limit=1000))
    assert [(r["level"], r["count"]) for r in rows] == [("critical", 1), ("warning", 79)]
    assert len(rows[1]["ids"]) == 79 and len(rows[1]["event_ids"]) == 5  # a few links, not 79

    client = create_app(central).test_client()
    login(client, "operator")
    page = client.get("/alerts").get_data(as_text=True)
    assert page.count('class="alert-row') == 2 and "×79" in page and "Acknowledge all 79" in page
    ids = re.search(r'data-ids="([\d,]+)"[^>]*>Acknowledge all 79', page).group(1).split(",")
    token = csrf_token(page)
    for alert_id in ids:  # what the page's one button does
        assert (
            client.post(f"/api/v1/alerts/{alert_id}/ack", headers={"X-CSRFToken": token}).status_code == 200
        )
    assert alerts.open_count(db) == 1
    central.close()
