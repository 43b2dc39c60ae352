"""Retention of the operators' alerts and the commands sent to devices, as real routing makes them over a real
Mosquitto: they go by age like everything else, but an open alert never before the retention window is over,
and nothing about an event under evidence hold (the event's alerts, its dispatches' alerts, the
``cancel_dispatch`` its officer was sent) goes while the hold lasts."""

from __future__ import annotations

from datetime import timedelta

from support.patrol import SITE, Camera, Centre, point, wait_for

from kuzet.central import alerts
from kuzet.central.auth import audit
from kuzet.central.store.retention import apply_retention
from kuzet.shared import messages, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

NOW = timeutil.utc_now()
OLD = timeutil.to_wire(NOW - timedelta(days=40))


class Radio:
    """badge-1 as routing hears it: positions and the broker's word that it went offline."""

    def __init__(self, url: str):
        self.link = Link(MqttSection(url=url), "badge-1-radio").start()

    def send(self, message) -> None:
        self.link.publish(
            topics.up(SITE, "badge-1", message.type), messages.encode(message)
        ).wait_for_publish(5)

    def locate(self) -> None:
        at = point(100)
        self.send(
            messages.Location(
                device="badge-1", position={"lat": at[0], "lon": at[1]}, fix="gps", duty="available"
            )
        )

    def drop(self) -> None:
        self.send(messages.Availability(device="badge-1", state="offline"))  # as its last will would


def _alert(db, text: str) -> dict:
    [row] = [dict(r) for r in db.query("select * from alerts where message like ?", [f"%{text}%"])]
    return row


def test_alerts_and_commands_expire_by_age_except_open_young_ones_and_those_of_held_events(
    tmp_path, mosquitto
):
    centre = Centre(tmp_path, mosquitto.url, ack_timeout_s=600)
    camera, radio = Camera(mosquitto.url), Radio(mosquitto.url)
    try:
        db = centre.db()
        # Three events and no patrol on duty: each waits, with an alert.
        held, gone, young = (camera.event(point(0), description=name) for name in ("held", "gone", "young"))
        wait_for(lambda: len(centre.routing.waiting()) == 3, what="three events waiting")
        # badge-1 comes on duty and takes them one by one: the operator stands it down from the first two
        # (a cancel_dispatch command each); it drops off the air once on each (an alert about the dispatch).
        dispatch = {}
        for event_id in (held, gone, young):
            radio.locate()
            [row] = wait_for(lambda e=event_id: centre.dispatches(event_id=e), what="the next dispatch")
            dispatch[event_id] = row["dispatch_id"]
            radio.drop()
            wait_for(
                lambda d=row["dispatch_id"]: db.execute(
                    "select 1 from alerts where dispatch_id = ?", [d]
                ).fetchone(),
                what="the offline alert",
            )
            if event_id != young:
                centre.routing.cancel(row["dispatch_id"], "operator", "needed elsewhere")
        assert db["alerts"].count == 6 and db["commands"].count == 2
        waiting_alerts = {
            row["event_id"]: row["id"]
            for row in db.query("select * from alerts where message like 'no free unit%'")
        }
        offline_alerts = {
            row["dispatch_id"]: row["id"]
            for row in db.query("select * from alerts where message like '%went offline%'")
        }
        commands = {
            row["dispatch_id"]: row["command_id"]
            for row in db.query(
                "select json_extract(args, '$.dispatch_id') dispatch_id, command_id from commands"
            )
        }

        alerts.acknowledge(db, waiting_alerts[gone], "operator")
        with db.conn:
            db.execute("update events set hold = 1 where event_id = ?", [held])
            # All of it long ago, but the young event, its dispatch and its waiting alert...
            db.execute(
                "update events set received_at = ?, updated_at = ? where event_id != ?", [OLD, OLD, young]
            )
            db.execute(
                "update dispatches set created_at = ?, updated_at = ? where event_id != ?", [OLD, OLD, young]
            )
            db.execute("update commands set created_at = ?", [OLD])
            db.execute(
                "update alerts set at = ?, acknowledged_at = ? where id != ?",
                [OLD, OLD, waiting_alerts[young]],
            )
            db.execute("update alerts set acknowledged_at = null where id != ?", [waiting_alerts[gone]])
        # ...and one old alert about the young event's dispatch that an operator acknowledged just now.
        alerts.acknowledge(db, offline_alerts[dispatch[young]], "operator")

        report = apply_retention(db, centre.central.media_dir, retention_days=30, max_media_gb=50, now=NOW)

        assert (report.alerts, report.commands, report.events) == (2, 1, 1)
        kept = {row["id"] for row in db["alerts"].rows}
        assert kept == {
            waiting_alerts[held],  # about the held event
            offline_alerts[dispatch[held]],  # about a dispatch to it
            waiting_alerts[young],  # open, and younger than the retention window
            offline_alerts[dispatch[young]],  # old, but acknowledged within the window
        }
        # Gone: the old acknowledged alert, and the old one nobody acknowledged.
        assert waiting_alerts[gone] not in kept and offline_alerts[dispatch[gone]] not in kept
        assert [row["command_id"] for row in db["commands"].rows] == [commands[dispatch[held]]]

        # Each deletion is on the record, as the system.
        [removed_alerts] = audit.entries(db, action="retention.delete_alerts")
        assert removed_alerts["actor"] == "system"
        assert sorted(removed_alerts["detail"]["id"]) == sorted(
            [waiting_alerts[gone], offline_alerts[dispatch[gone]]]
        )
        [removed_commands] = audit.entries(db, action="retention.delete_commands")
        assert removed_commands["detail"]["command_id"] == [commands[dispatch[gone]]]
        assert audit.verify(db) == (True, None)

        # Once the hold is released, what was kept for it goes too.
        with db.conn:
            db.execute("update events set hold = 0 where event_id = ?", [held])
        report = apply_retention(db, centre.central.media_dir, retention_days=30, max_media_gb=50, now=NOW)
        assert (report.alerts, report.commands) == (2, 1)
        assert {row["id"] for row in db["alerts"].rows} == {
            waiting_alerts[young],
            offline_alerts[dispatch[young]],
        }
        assert db["commands"].count == 0
    finally:
        camera.stop()
        radio.link.stop()
        centre.stop()
