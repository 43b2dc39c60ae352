"""Alerts a device's messages raise are merged and rate-limited (central.alerts.raise_for_device): a badge
repeating nonsense leaves one open alert with a count, not hundreds for the operators to wade through."""

from __future__ import annotations

from support.ingest import dead_letter_rows, event, new_id, wait_for
from support.patrol import SITE, Centre

from kuzet.central import alerts
from kuzet.shared import messages, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link


def _answers(link: Link, device: str, count: int) -> None:
    for _ in range(count):
        answer = messages.DispatchState(device=device, dispatch_id=new_id(), state="acknowledged")
        link.publish(topics.up(SITE, device, "dispatch_state"), messages.encode(answer))


def _open(centre: Centre, device: str) -> list[dict]:
    return [row for row in alerts.listing(centre.db(), limit=10_000) if row["device"] == device]


def test_500_refused_answers_leave_one_open_alert_with_their_count(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url)
    link = Link(MqttSection(url=mosquitto.url), "badge-noisy").start()
    try:
        _answers(link, "badge-noisy", 500)
        wait_for(lambda: len(dead_letter_rows(centre.central)) >= 500, timeout_s=60, what="500 refusals")
        centre.routing.drain()
        [alert] = _open(centre, "badge-noisy")
        assert alert["count"] == 500
        assert alert["condition"] == "dispatch_state refused"
        assert alert["last_at"] >= alert["at"]
        assert alerts.open_count(centre.db()) == 1
    finally:
        link.stop()
        centre.stop()


def test_a_device_raises_at_most_its_rate_of_new_alerts(tmp_path, mosquitto):
    """Acknowledging the merged alert lets the next repeat raise a new one, but no more than
    DEVICE_ALERTS_PER_MINUTE a minute: the rest are counted in one 'rate_limited' alert."""
    centre = Centre(tmp_path, mosquitto.url)
    link = Link(MqttSection(url=mosquitto.url), "badge-noisy").start()
    rounds = alerts.DEVICE_ALERTS_PER_MINUTE + 5
    try:
        for sent in range(1, rounds + 1):
            _answers(link, "badge-noisy", 1)
            wait_for(lambda n=sent: len(dead_letter_rows(centre.central)) >= n, what=f"refusal {sent}")
            centre.routing.drain()
            for row in _open(centre, "badge-noisy"):
                if row["condition"] != alerts.RATE_LIMITED:
                    centre.operations.acknowledge_alert(row["id"], "operator")
        raised = [row for row in alerts.listing(centre.db(), open_only=False, limit=1000)]
        assert len(raised) == alerts.DEVICE_ALERTS_PER_MINUTE + 1
        [limited] = _open(centre, "badge-noisy")
        assert limited["condition"] == alerts.RATE_LIMITED
        assert limited["count"] == rounds - alerts.DEVICE_ALERTS_PER_MINUTE
    finally:
        link.stop()
        centre.stop()


def test_events_without_a_position_leave_one_alert_per_camera(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url)
    link = Link(MqttSection(url=mosquitto.url), "cam-lost").start()
    try:
        for _ in range(30):  # patrol-worthy, and neither the event nor the camera has a position
            message = event("cam-lost", new_id(), 0)
            link.publish(topics.up(SITE, "cam-lost", "event"), messages.encode(message)).wait_for_publish(5)
        wait_for(lambda: centre.db()["events"].count == 30, what="30 events stored")
        centre.routing.drain()
        wait_for(lambda: sum(a["count"] for a in _open(centre, "cam-lost")) == 30, what="30 counted")
        [alert] = _open(centre, "cam-lost")
        assert alert["condition"] == "event without position" and alert["count"] == 30
    finally:
        link.stop()
        centre.stop()
