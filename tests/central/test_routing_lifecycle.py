"""How routing follows an event through its life, over a real Mosquitto with real badge agents: an event whose
first message is its "closed" one, an intercept that one unit resolves, a proposal nobody confirms, and the
alerts it all raises, stored until an operator acknowledges them."""

from __future__ import annotations

from datetime import timedelta

from support.patrol import SITE, Centre, inbox_has, point, start_badge, wait_for

from kuzet.central import alerts
from kuzet.central.auth import tokens, users
from kuzet.central.web import create_app
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.messages import Event, encode


def closed_event(at, started_ago_s: float) -> Event:
    """An event as a camera replaying its backlog delivers it last: already closed."""
    started = timeutil.utc_now() - timedelta(seconds=started_ago_s)
    return Event(
        device="cam-1",
        event_id=ids.new_id(),
        seq=3,
        state="closed",
        event_type="loitering",
        severity="high",
        label="person",
        score=0.9,
        started_at=started,
        ended_at=started + timedelta(seconds=30),
        location={"lat": at[0], "lon": at[1]},
    )


def test_an_event_first_seen_closed_is_still_routed_unless_too_old(tmp_path, mosquitto, camera):
    centre = Centre(tmp_path, mosquitto.url, waiting_max_age_s=600)
    badge = start_badge(tmp_path, mosquitto.url, "badge-1", point(100), centre)
    try:
        stale = closed_event(point(0), started_ago_s=3600)  # from a backlog an hour old: nobody to catch
        camera.raw(topics.up(SITE, "cam-1", "event"), encode(stale))
        recent = closed_event(point(0), started_ago_s=60)
        camera.raw(topics.up(SITE, "cam-1", "event"), encode(recent))

        [item] = wait_for(inbox_has(badge), what="the closed-on-arrival event dispatched")
        assert item.dispatch.event_id == recent.event_id
        centre.routing.drain()
        assert [d["event_id"] for d in centre.dispatches()] == [recent.event_id]
        assert centre.db()["events"].get(stale.event_id)["status"] == "new"
    finally:
        badge.stop()
        centre.stop()


def test_one_unit_resolving_an_intercept_stands_the_others_down(tmp_path, mosquitto, camera):
    centre = Centre(
        tmp_path, mosquitto.url, rules={"running": {"mode": "intercept"}}, intercept_radius_m=1000
    )
    agents = {
        name: start_badge(tmp_path, mosquitto.url, name, at, centre)
        for name, at in (("badge-a", point(300)), ("badge-b", point(0, 600)), ("badge-c", point(-400)))
    }
    try:
        event_id = camera.event(point(0), event_type="running")
        items = {
            name: wait_for(inbox_has(agent), what=f"intercept at {name}")[0] for name, agent in agents.items()
        }
        agents["badge-b"].acknowledge()
        agents["badge-a"].acknowledge()
        agents["badge-a"].resolve("Suspect detained at the bus stop")

        for name in ("badge-b", "badge-c"):
            wait_for(
                lambda name=name: agents[name].inbox.get(items[name].dispatch_id).state == "cancelled",
                what=f"{name} told to stand down",
            )
        states = {d["unit"]: d["state"] for d in centre.dispatches()}
        assert states == {"badge-a": "resolved", "badge-b": "cancelled", "badge-c": "cancelled"}
        event = centre.db()["events"].get(event_id)
        assert event["status"] == "closed" and event["closed_note"] == "Suspect detained at the bus stop"
        assert centre.event_audit(event_id).count(("badge-a", "event.close")) == 1
        # The stand-down commands are recorded like any command, and the badges' answers stored with them.
        db = centre.db()
        wait_for(
            lambda: (
                db.execute(
                    "select count(*) from commands where name = 'cancel_dispatch' and state = 'ok'"
                ).fetchone()[0]
                == 2
            ),
            what="both badges' answers to the stand-down",
        )
        # Both freed officers are available again for the next event.
        wait_for(lambda: centre.unit("badge-b").free() and centre.unit("badge-c").free(), what="units free")
    finally:
        for agent in agents.values():
            agent.stop()
        centre.stop()


def test_a_proposal_nobody_confirms_raises_a_stored_alert(tmp_path, mosquitto, camera):
    centre = Centre(tmp_path, mosquitto.url, policy="confirm", confirm_timeout_s=1)
    badge = start_badge(tmp_path, mosquitto.url, "badge-1", point(100), centre)
    db = centre.db()
    users.create_user(db, "aigerim", "correct horse battery 7", "operator", actor="test")
    users.create_user(db, "tech", "correct horse battery 7", "technician", actor="test")
    client = create_app(centre.central).test_client()
    operator = {"Authorization": f"Bearer {tokens.create_token(db, 'aigerim', 'test', actor='test')}"}
    technician = {"Authorization": f"Bearer {tokens.create_token(db, 'tech', 'test', actor='test')}"}
    try:
        event_id = camera.event(point(0))
        [proposal] = wait_for(lambda: centre.dispatches(state="proposed"), what="the proposal")
        [overdue] = wait_for(
            lambda: [a for a in alerts.listing(db) if "nobody confirmed" in a["message"]],
            what="the overdue proposal alerted",
        )
        assert overdue["level"] == "critical" and overdue["dispatch_id"] == proposal["dispatch_id"]
        assert overdue["event_id"] == event_id
        assert badge.inbox.items() == []  # policy "alert": nothing is sent without an operator
        assert centre.dispatches()[0]["state"] == "proposed"  # still there to confirm

        listed = client.get("/api/v1/alerts", headers=operator).get_json()
        assert listed["open"] >= 1 and overdue["id"] in [a["id"] for a in listed["alerts"]]
        acknowledge = f"/api/v1/alerts/{overdue['id']}/ack"
        assert client.post(acknowledge, headers=technician).status_code == 403
        response = client.post(acknowledge, headers=operator)
        assert response.status_code == 200 and response.get_json()["acknowledged_by"] == "aigerim"
        assert overdue["id"] not in [
            a["id"] for a in client.get("/api/v1/alerts", headers=operator).json["alerts"]
        ]
        assert client.get("/api/v1/alerts?state=all", headers=operator).json["open"] == listed["open"] - 1
        assert client.post("/api/v1/alerts/999999/ack", headers=operator).status_code == 404
        entries = list(db["audit"].rows_where("action = 'alert.acknowledge'"))
        assert [(e["actor"], e["target"]) for e in entries] == [("aigerim", f"alert:{overdue['id']}")]
    finally:
        badge.stop()
        centre.stop()


def test_under_on_confirm_timeout_send_the_unit_goes_anyway(tmp_path, mosquitto, camera):
    centre = Centre(tmp_path, mosquitto.url, policy="confirm", confirm_timeout_s=1, on_confirm_timeout="send")
    badge = start_badge(tmp_path, mosquitto.url, "badge-1", point(100), centre)
    try:
        camera.event(point(0))
        [proposal] = wait_for(lambda: centre.dispatches(state="proposed"), what="the proposal")
        [item] = wait_for(inbox_has(badge), what="the unconfirmed proposal sent by policy")
        assert item.dispatch_id == proposal["dispatch_id"]
        assert centre.log_states(proposal["dispatch_id"]) == ["proposed", "confirmed", "sent"]
        assert any("nobody confirmed" in text and "was sent" in text for text in centre.alert_texts())
    finally:
        badge.stop()
        centre.stop()


def test_no_free_unit_alert_is_stored_with_the_event(tmp_path, mosquitto, camera):
    centre = Centre(tmp_path, mosquitto.url)
    try:
        event_id = camera.event(point(0))
        wait_for(lambda: centre.routing.waiting() == [event_id], what="the event waiting")
        [stored] = alerts.listing(centre.db())
        assert stored["event_id"] == event_id and "no free unit" in stored["message"]
        [live] = [a for a in centre.updates("alert") if a.get("id") == stored["id"]]
        assert live["message"] == stored["message"]
    finally:
        centre.stop()
