"""Central sends the site's watchlist to its cameras by itself, through a real Mosquitto with site-init's
certificates and ACL: an enrolment makes a camera's watchlist current; a removal reaches it as a new bundle
without the entry; an empty watchlist and a revocation wipe the camera's sealed copy at once. The cameras take
a watchlist signed with central's watchlist key alone, and never through ``install_update``."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from support.ingest import make_central, wait_for
from support.updates import SITE, provision, signed

from kuzet.central.service import start_parts
from kuzet.central.store import registry
from kuzet.central.watchlist import entries
from kuzet.central.watchlist.enrolment import EnrolledFace
from kuzet.edge.camera.agent import CameraAgent
from kuzet.edge.camera.config import load as load_camera
from kuzet.models import store
from kuzet.provisioning import signing
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import provision_device
from kuzet.provisioning.site import SitePaths, load_settings
from kuzet.provisioning.site_init import central_mqtt_section
from kuzet.shared import timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")
pytestmark = pytest.mark.slow


def enrol(db, name: str, seed: int) -> str:
    """An entry with one photo's embedding (a made-up one: the cameras here are never shown a face)."""
    entry = entries.parse_input(
        {
            "category": "wanted",
            "name": name,
            "case_number": f"KZ-{seed}",
            "authority": "Pavlodar police",
            "reason": "push test",
            "expires_on": (timeutil.utc_now() + timedelta(days=3)).strftime("%Y-%m-%d"),
        },
        ZoneInfo("Asia/Almaty"),
    )
    entry_id = entries.create(db, "supervisor", entry)
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    face = EnrolledFace(vector / np.linalg.norm(vector), (0, 0, 100, 100), 100, 100, 1.0, 1.0)
    entries.add_photo(db, "supervisor", entry_id, b"\xff\xd8 not shown here", face)
    return entry_id


@pytest.fixture
def site(tmp_path, mosquitto_factory, shared_dir, monkeypatch):
    """A provisioned camera with faces on, and central (site-init's certificate, its watchlist key) running
    (the camera's detector is imported from the shared material: skipped without it)."""
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    store.ensure(allow_download=False, progress=False)
    device = provision(tmp_path, mosquitto_factory, "camera", "Toraigyrov / Lomov")
    device.central.link.stop()  # central itself connects with that certificate below
    paths, settings = SitePaths(tmp_path / "site"), load_settings(tmp_path / "site")
    config = device.config
    assert config["faces"]["watchlist_key"] == "watchlist.pub" and (device.folder / "watchlist.pub").exists()
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2

    cv2.imwrite(str(frames / "0000.png"), np.zeros((240, 320, 3), np.uint8))
    config["updates"]["install_dir"] = str(tmp_path / "updates")
    config["storage"]["dir"] = str(tmp_path / "state")
    config["faces"] |= {"enabled": True}
    config |= {
        "source": {"kind": "images", "path": str(frames), "loop": True, "fps_limit": 5},
        "evidence": {"clips": False},
        "health": {"heartbeat_s": 0.5},
    }
    path = device.write_config(config)

    central = make_central(
        tmp_path,
        mqtt=central_mqtt_section(paths, settings),
        watchlist={"signing_key": str(paths.watchlist_key), "check_s": 0.3},
    )
    db = central.db()
    registry.register(db, registry.Registration(device_id=device.device_id, kind="camera", site=SITE), "test")
    running = contextlib.ExitStack()
    start_parts(central, running, web=False)
    agent = CameraAgent(load_camera(path), path)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    yield central, agent, device, paths
    agent.stop()
    thread.join(timeout=60)
    running.close()
    central.close()


def held(agent) -> tuple[str, ...]:
    watchlist = agent.faces.watchlist
    return tuple(sorted(set(watchlist.entry_ids))) if watchlist is not None else ()


def reported(db, device: str) -> str | None:
    """What the camera's last heartbeat at central says of its watchlist."""
    row = db.execute("SELECT json_extract(status, '$.watchlist') FROM devices WHERE device_id = ?", [device])
    return row.fetchone()[0]


def audited(db, action: str, device: str) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM audit WHERE action = ? AND target = ?", [action, f"device:{device}"]
    ).fetchone()[0]


class eavesdropper:
    """A second device of the site, with its own certificate, subscribing to the camera's watchlist topic."""

    def __init__(self, paths, camera: str):
        folder = write_folder(
            provision_device(paths, load_settings(paths.root), "camera", "other")[1], paths.root / "other"
        )
        section = MqttSection(
            url=central_mqtt_section(paths, load_settings(paths.root))["brokers"][0],
            tls={"ca": folder / "ca.crt", "cert": folder / "device.crt", "key": folder / "device.key"},
        )
        self.received: list = []
        self.link = Link(section, json.loads((folder / "device.json").read_text())["device_id"])
        self.link.subscribe(
            topics.device_down(SITE, camera), lambda topic, payload: self.received.append(topic)
        )
        self.link.start()
        wait_for(self.link.connected.is_set, timeout_s=60, what="the other device connected")


def test_central_pushes_changes_and_wipes_without_anyone(site):
    central, agent, device, paths = site
    db = central.db()
    sealed = agent.storage / "watchlist.sealed"
    wait_for(lambda: agent.status().watchlist == "none", timeout_s=60, what="the camera: no watchlist")

    first, second = enrol(db, "Person One", 1), enrol(db, "Person Two", 2)
    wait_for(lambda: agent.status().watchlist == "current", timeout_s=60, what="the watchlist pushed")
    wait_for(
        lambda: held(agent) == tuple(sorted((first, second))), timeout_s=60, what="both entries on the camera"
    )
    wait_for(
        lambda: reported(db, device.device_id) == "current",
        timeout_s=60,
        what="central told so by the heartbeat",
    )
    assert sealed.exists() and first.encode() not in sealed.read_bytes()
    wait_for(lambda: audited(db, "watchlist.pushed", device.device_id), what="the push audited")

    overheard = eavesdropper(paths, device.device_id)  # another device of the site, after the camera's topic
    entries.remove(db, "supervisor", first, "found")
    wait_for(lambda: held(agent) == (second,), timeout_s=60, what="the next bundle without the removed entry")
    assert overheard.link.connected.is_set()  # still in: the broker refuses it the topic, not the connection
    assert overheard.received == []  # the broker's ACL: neither the retained bundle nor the new one
    overheard.link.stop()

    entries.remove(db, "supervisor", second, "closed")  # nothing left to look for: a wipe
    wait_for(lambda: not sealed.exists(), timeout_s=60, what="the sealed copy deleted")
    assert agent.status().watchlist == "none"
    wait_for(
        lambda: reported(db, device.device_id) == "none",
        timeout_s=60,
        what="central told the camera holds none",
    )
    wait_for(lambda: audited(db, "watchlist.wiped", device.device_id), what="the wipe audited")
    assert audited(db, "watchlist.wiped", device.device_id) == 1


def test_a_revoked_camera_is_wiped_at_once(site):
    central, agent, device, _ = site
    db = central.db()
    sealed = agent.storage / "watchlist.sealed"
    enrol(db, "Person Three", 3)
    wait_for(lambda: agent.status().watchlist == "current", timeout_s=60, what="the watchlist pushed")
    assert sealed.exists()

    registry.revoke(db, device.device_id, "admin", "stolen")
    wait_for(lambda: not sealed.exists(), timeout_s=60, what="the revoked camera's sealed copy deleted")
    assert agent.faces.watchlist is None and agent.status().watchlist == "none"


def test_only_the_watchlist_key_signs_a_watchlist_and_it_signs_nothing_else(site, tmp_path):
    _, agent, device, paths = site
    watchlist_key = signing.load_private_key(paths.watchlist_key)
    # a watchlist through the technician's channel is refused, whichever key signed it
    for key in (device.key, watchlist_key):
        bundle = signed(tmp_path, key, "watchlist", "2099", {"watchlist.json": b"{}"})
        outcome, _ = agent.updates.install({"path": str(bundle)}, None, None)
        assert not outcome.ok and outcome.refused
    # a configuration signed with the watchlist key is refused by install_update (not the update key) ...
    config = signed(tmp_path, watchlist_key, "config", "2099", {"camera.toml": "[health]\nheartbeat_s = 7\n"})
    outcome, _ = agent.updates.install({"path": str(config)}, None, None)
    assert not outcome.ok and "signature" in outcome.message
    # ... and on the watchlist topic a bundle of another kind, or signed with the update key, is refused
    assert not agent.watchlist.install(config.read_bytes()).ok
    by_update_key = signed(tmp_path, device.key, "watchlist", "2099", {"watchlist.json": b"{}"})
    refused = agent.watchlist.install(by_update_key.read_bytes())
    assert not refused.ok and "signature" in refused.message
    assert agent.faces.watchlist is None


def without_broker(tmp_path):
    """Central with a faces camera (cam-1) and one with faces off (cam-2), and what it would publish."""
    from kuzet.shared import messages

    central = make_central(tmp_path)
    sent = []
    central.outbound.connect(lambda topic, payload, retain=False: sent.append((topic, payload, retain)))
    db = central.db()
    registry.register(db, registry.Registration(device_id="cam-1", kind="camera", site=SITE), "test")
    registry.register(db, registry.Registration(device_id="cam-2", kind="camera", site=SITE), "test")
    status = messages.Status(
        device="cam-1", kind="camera", software_version="test", uptime_s=1, watchlist="none"
    )
    db.execute("UPDATE devices SET status = ? WHERE device_id = 'cam-1'", [messages.encode(status).decode()])
    db.conn.commit()
    return central, sent


def test_the_bundle_is_sent_again_before_it_lapses_and_wiped_when_the_entries_expire(tmp_path):
    """The schedule alone, on central's clock (no broker: what central would publish is recorded)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from kuzet.central.watchlist.push import WatchlistPusher
    from kuzet.shared import messages

    central, sent = without_broker(tmp_path)
    enrol(central.db(), "Person Four", 4)  # expires in 3 days
    pusher, now = WatchlistPusher(central, Ed25519PrivateKey.generate()), timeutil.utc_now()

    def pushed(at) -> list:
        sent.clear()
        pusher.run_once(at)
        return [
            (topic.split("/")[-3], messages.decode(topic, payload).bundle is not None, retain)
            for topic, payload, retain in sent
        ]

    assert pushed(now) == [("cam-1", True, True)]  # cam-2 reports no watchlist: faces off, never sent one
    assert pushed(now + timedelta(hours=1)) == []  # nothing changed, not due
    assert pushed(now + timedelta(hours=13)) == [("cam-1", True, True)]  # due: it would lapse within 12 h
    # within a day of the entry's expiry the bundle lapses with it: not sent again and again meanwhile
    assert pushed(now + timedelta(days=2, hours=12)) == [("cam-1", True, True)]
    assert pushed(now + timedelta(days=2, hours=13)) == []
    assert pushed(now + timedelta(days=5)) == [("cam-1", False, True)]  # every entry expired: a wipe
    assert pushed(now + timedelta(days=5, hours=1)) == []
    central.close()


def test_a_watchlist_too_large_for_a_message_is_not_sent_and_the_operators_are_told(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from kuzet.central import alerts
    from kuzet.central.watchlist.push import WatchlistPusher
    from kuzet.shared import messages

    central, sent = without_broker(tmp_path)
    enrol(central.db(), "Person Five", 5)
    monkeypatch.setitem(messages.MAX_PAYLOAD_BYTES, "watchlist", 1024)
    pusher = WatchlistPusher(central, Ed25519PrivateKey.generate())
    assert pusher.run_once() == [] and pusher.run_once() == [] and sent == []
    [alert] = alerts.listing(central.db())
    assert alert["device"] == "cam-1" and "too large" in alert["message"] and alert["count"] == 2
    central.close()
