"""Commands to devices: who may send which, what is refused and why, and the way round trip with a real badge
agent over a real Mosquitto: the command published, the badge's result stored against it, both audited, and
a result that answers no command kept as a dead letter."""

from __future__ import annotations

from support.ingest import wait_for
from support.patrol import point, start_badge
from support.web import make_central, token_for

from kuzet.central.auth import audit
from kuzet.central.store import registry
from kuzet.central.web import create_app
from kuzet.shared import ids, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import CommandResult, encode
from kuzet.shared.mqtt import Link


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def register(central, device_id: str, kind: str = "camera") -> None:
    registration = registry.Registration(
        device_id=device_id, kind=kind, name=device_id.upper(), site="pavlodar"
    )
    registry.register(central.db(), registration, actor="test")


def test_commands_are_checked_against_roles_and_the_contract(tmp_path):
    central = make_central(tmp_path)  # no MQTT connection: whatever passes the checks cannot be sent
    register(central, "cam-01")
    client = create_app(central).test_client()
    operator, technician = bearer(token_for(central, "operator")), bearer(token_for(central, "technician"))
    url = "/api/v1/devices/cam-01/commands"

    refused = client.post(url, json={"name": "live_start", "args": {}}, headers=technician)
    assert refused.status_code == 403 and "needs events.media" in refused.json["error"]  # footage
    refused = client.post(url, json={"name": "reload_config"}, headers=operator)
    assert refused.status_code == 403 and "needs devices.manage" in refused.json["error"]
    refused = client.post(url, json={"name": "cancel_dispatch", "args": {}}, headers=operator)
    assert refused.status_code == 409 and "/api/v1/dispatches" in refused.json["error"]
    assert client.post(url, json={"name": "format_disk"}, headers=technician).status_code == 400
    refused = client.post(url, json={"name": "reload_config", "args": [1]}, headers=technician)
    assert refused.status_code == 400 and "args" in refused.json["error"]
    assert client.post(url, data="name=reload_config", headers=technician).status_code == 400
    anonymous = client.post(url, json={"name": "live_stop"})  # no token, no session: 401 (before CSRF)
    assert anonymous.status_code == 401 and "log in" in anonymous.json["error"]
    assert (
        client.post(
            "/api/v1/devices/cam-99/commands", json={"name": "live_stop"}, headers=operator
        ).status_code
        == 404
    )

    unsent = client.post(url, json={"name": "reload_config"}, headers=technician)
    assert unsent.status_code == 503 and "could not send" in unsent.json["error"]
    [row] = client.get(url, headers=technician).json["commands"]
    assert row["state"] == "unsent" and row["created_by"] == "technician"

    registry.revoke(central.db(), "cam-01", "test", "stolen")
    refused = client.post(url, json={"name": "reload_config"}, headers=technician)
    assert refused.status_code == 409 and "revoked" in refused.json["error"]


def test_a_command_reaches_a_real_badge_and_its_result_comes_back(tmp_path, mosquitto, live):
    central = live.central
    badge = start_badge(tmp_path, mosquitto.url, "badge-5", point(0))
    client = live.web.app.test_client()
    operator, technician = bearer(token_for(central, "operator")), bearer(token_for(central, "technician"))
    url = "/api/v1/devices/badge-5/commands"
    updates = central.hub.subscribe()
    try:
        wait_for(lambda: central.db()["devices"].count_where("device_id = 'badge-5'"), what="the badge heard")
        sent = client.post(url, json={"name": "live_stop"}, headers=operator)
        assert sent.status_code == 202 and sent.json["state"] == "sent"
        refused = client.post(
            url, json={"name": "reload_config", "args": {"why": "test"}}, headers=technician
        )
        assert refused.status_code == 202

        def answered():
            rows = client.get(url, headers=technician).json["commands"]
            return rows if all(r["state"] != "sent" for r in rows) else None

        newest, oldest = wait_for(answered, what="both results stored")
        assert oldest["command_id"] == sent.json["command_id"] and oldest["state"] == "ok"
        assert newest["name"] == "reload_config" and newest["args"] == {"why": "test"}
        assert newest["state"] == "failed" and "does not do reload_config" in newest["result_message"]
        assert newest["result_at"] >= newest["created_at"]

        entries = [(e["actor"], e["action"]) for e in audit.entries(central.db(), target="device:badge-5")]
        assert sorted(entries) == [
            ("badge-5", "device.command_result"),
            ("badge-5", "device.command_result"),
            ("operator", "device.command"),
            ("technician", "device.command"),
        ]
        results = []
        while (update := updates.get(0.01)) is not None:
            if update.channel == "command" and update.data["result_at"]:
                results.append(update.data["command_id"])
        assert sorted(results) == sorted([newest["command_id"], oldest["command_id"]])

        # A result that answers nothing this device was sent is kept for inspection, and changes nothing.
        forger = Link(MqttSection(url=mosquitto.url), "forger").start()
        stray = CommandResult(device="badge-5", command_id=ids.new_id(), name="live_stop", ok=True)
        stolen = CommandResult(device="cam-9", command_id=newest["command_id"], name="reload_config", ok=True)
        forger.publish(topics.up("pavlodar", "badge-5", "command_result"), encode(stray)).wait_for_publish(5)
        forger.publish(topics.up("pavlodar", "cam-9", "command_result"), encode(stolen)).wait_for_publish(5)
        forger.stop()

        def stray_letters():
            reasons = [r["reason"] for r in central.db()["dead_letters"].rows if "command" in r["reason"]]
            return reasons if len(reasons) >= 2 else None

        reasons = wait_for(stray_letters, what="both stray results kept")
        assert any("unknown command" in r for r in reasons)
        assert any("which was sent to badge-5" in r for r in reasons)
        assert client.get(url, headers=technician).json["commands"][0]["state"] == "failed"  # unchanged
    finally:
        updates.close()
        badge.stop()


def test_the_device_page_offers_each_role_what_it_may_do(tmp_path):
    central = make_central(tmp_path)
    register(central, "cam-01")
    client = create_app(central).test_client()
    page = {
        role: client.get("/devices/cam-01", headers=bearer(token_for(central, role))).get_data(as_text=True)
        for role in ("operator", "technician")
    }
    assert 'id="live-panel"' in page["operator"] and 'id="live-panel"' not in page["technician"]
    assert "<option>reload_config</option>" in page["technician"]
    assert "<option>reload_config</option>" not in page["operator"]
    assert "<option>snapshot</option>" in page["operator"]
    assert 'id="evidence-panel"' not in page["operator"]  # a camera keeps no body-camera evidence
    assert client.get("/devices/cam-99", headers=bearer(token_for(central, "operator"))).status_code == 404
