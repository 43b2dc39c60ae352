"""Signed configuration updates on the badge: a badge provisioned by site-init, on its TLS Mosquitto, recording
evidence from real footage while it works a dispatch, installs a signed config bundle by command (from a URL
or a path) and runs it at once without losing its inbox or its evidence chain; unsigned, tampered,
foreign-signed, older and unrunnable bundles are refused and it keeps running what it had."""

from __future__ import annotations

import av
import pytest
from support.patrol import wait_for
from support.updates import provision, rewrite, signed

from kuzet.edge.badge.agent import BadgeAgent
from kuzet.edge.badge.config import BadgeConfig
from kuzet.provisioning import signing
from kuzet.shared import evidence, ids
from kuzet.shared.config import load
from kuzet.shared.messages import Dispatch

HOME = (52.2873, 76.9674)
NORTH = (52.2973, 76.9674)  # about 1.1 km north

UPDATE = """
[gps]
source = "route"
route_file = "north.csv"
route_speed_mps = 0.01
report_interval_s = 30

[live]
fps = 1
max_kbps = 64

[evidence]
mode = "dispatch"
segment_s = 1.5
fps = 3
width = 256
"""


def route(at: tuple[float, float]) -> str:
    return f"lat,lon\n{at[0]},{at[1]}\n{at[0] + 0.00001},{at[1]}\n"


@pytest.fixture
def badge(tmp_path, mosquitto_factory, footage):
    """A provisioned badge; ``start()`` runs the real agent from its config file as ``kuzet badge`` does."""
    device = provision(tmp_path, mosquitto_factory, "badge", "Patrol 12")
    config = device.config
    # What `kuzet provision device --kind badge` writes, checked for real below.
    assert config["updates"] == {"public_key": "update.pub", "install_dir": "/var/lib/kuzet/badge/updates"}
    config["updates"]["install_dir"] = str(tmp_path / "updates")
    config["storage"]["dir"] = str(tmp_path / "state")
    (device.folder / "home.csv").write_text(route(HOME))
    (device.folder / "north.csv").write_text(route(NORTH))  # the update's route, beside the config
    config["gps"] = {"source": "route", "route_file": "home.csv", "route_speed_mps": 0.01}
    config |= {
        "badge": {"initial_duty": "available", "status_interval_s": 1},
        "camera": {"source": str(footage / "pets09-s2l1" / "vtest.avi")},
        "evidence": {"mode": "dispatch", "segment_s": 1, "fps": 4, "width": 320},
    }
    path = device.write_config(config)
    running: list[BadgeAgent] = []

    def start() -> BadgeAgent:
        agent = BadgeAgent(load(path, BadgeConfig), config_path=path).start()
        running.append(agent)
        return agent

    def stop(agent: BadgeAgent) -> None:
        running.remove(agent)
        agent.stop()

    yield start, stop, device
    for agent in running:
        agent.stop()
    device.central.link.stop()


def working_a_dispatch(agent: BadgeAgent, central) -> Dispatch:
    """The officer acknowledges a dispatch, so the badge records evidence."""
    dispatch = Dispatch(
        device=agent.device,
        dispatch_id=ids.new_id(),
        mode="nearest",
        event_type="loitering",
        severity="high",
        place={"lat": HOME[0], "lon": HOME[1]},
        description="Two men loitering at the ATM",
    )
    central.send("dispatch", dispatch)
    wait_for(lambda: agent.inbox.items(), what="the dispatch in the inbox")
    agent.acknowledge()
    return dispatch


def chain_at_central(central) -> list:
    with central.cond:
        return [m for m in central.received if m.type == "evidence"]


def test_badge_runs_a_signed_config_update_at_once_keeping_inbox_and_evidence_chain(tmp_path, badge, served):
    start, stop, device = badge
    central, key = device.central, device.key
    www, server = served
    agent = start()
    assert central.next_status().duty == "available"
    dispatch = working_a_dispatch(agent, central)
    wait_for(lambda: len(chain_at_central(central)) >= 2, timeout_s=30, what="two segments at central")

    (www / "v1.tar").write_bytes(signed(tmp_path, key, "config", "1", {"badge.toml": UPDATE}).read_bytes())
    result = central.command("install_update", url=server.url("v1.tar"))
    assert result.ok, result.message
    assert result.data["config_version"] == "1" and result.data["refused"] is False
    # What the update says runs now; what it does not name stays the file's.
    assert agent.config.live.max_kbps == 64 and agent.config.evidence.width == 256
    assert agent.config.gps.route_file == device.folder / "north.csv"
    assert agent.config.badge.status_interval_s == 1 and agent.config.device.id == device.device_id
    wait_for(
        lambda: any(
            m.type == "location" and m.position.lat == pytest.approx(NORTH[0], abs=1e-4)
            for m in list(central.received)
        ),
        what="a position from the new route",
    )
    # The inbox and the duty are as they were, and the chain goes on through the switch.
    current = agent.inbox.current()
    assert current.dispatch_id == dispatch.dispatch_id and current.state == "acknowledged"
    assert central.next_status().duty == "busy"
    at_switch = len(chain_at_central(central))
    wait_for(lambda: len(chain_at_central(central)) >= at_switch + 2, timeout_s=30, what="segments after")
    segments = chain_at_central(central)
    assert evidence.verify(segments) == []
    assert [s.index for s in segments] == list(range(len(segments)))
    newest = agent.spool.dir / f"{segments[-1].segment_id}.avi"
    wait_for(newest.exists, what="the newest recording in the upload spool")
    with av.open(str(newest)) as video:
        assert video.streams.video[0].width == 256  # recorded with the updated settings

    # A newer version, then back with rollback_update.
    v2 = signed(
        tmp_path, key, "config", "2", {"badge.toml": UPDATE.replace("max_kbps = 64", "max_kbps = 32")}
    )
    result = central.command("install_update", path=str(v2))
    assert result.ok and result.data["previous_version"] == "1" and agent.config.live.max_kbps == 32
    result = central.command("rollback_update", kind="config")
    assert result.ok and result.data["config_version"] == "1" and agent.config.live.max_kbps == 64
    result = central.command("rollback_update", kind="model")
    assert not result.ok and "args.kind: config" in result.message

    # A restarted badge runs the installed version over its file, with its inbox and chain.
    stop(agent)
    again = start()
    assert again.config.live.max_kbps == 64 and again.config.gps.route_file == device.folder / "north.csv"
    assert again.inbox.current().dispatch_id == dispatch.dispatch_id
    sealed = len(chain_at_central(central))
    wait_for(
        lambda: len(chain_at_central(central)) > sealed, timeout_s=30, what="recording after the restart"
    )
    assert evidence.verify(chain_at_central(central)) == []


def test_badge_refuses_bad_bundles_and_keeps_running_the_old_version(tmp_path, badge):
    start, _, device = badge
    central, key = device.central, device.key
    agent = start()
    assert central.command(
        "install_update", path=str(signed(tmp_path, key, "config", "1.5", {"badge.toml": UPDATE}))
    ).ok
    running = agent.config

    good = signed(tmp_path, key, "config", "2", {"badge.toml": UPDATE.replace("fps = 3", "fps = 2")})
    signing.create_keypair(tmp_path / "rogue.key", tmp_path / "rogue.pub")
    rogue = signing.load_private_key(tmp_path / "rogue.key")
    refused = {
        "checksum mismatch": rewrite(
            good,
            tmp_path / "tampered.tar",
            lambda n, d: d.replace(b"fps = 2", b"fps = 30") if n.endswith(".toml") else d,
        ),
        "unsigned": rewrite(
            good, tmp_path / "unsigned.tar", lambda n, d: None if n == signing.SIGNATURE else d
        ),
        "bad signature": signed(tmp_path, rogue, "config", "2", {"badge.toml": UPDATE}),
        "older than the installed 1.5": signed(tmp_path, key, "config", "1.4", {"badge.toml": UPDATE}),
        "a badge takes config updates": signed(tmp_path, key, "model", "3", {"detect.tflite": b"TFL3"}),
    }
    for reason, bundle in refused.items():
        result = central.command("install_update", path=str(bundle))
        assert not result.ok and result.data["refused"] is True, reason
        assert reason in result.message and result.data["config_version"] == "1.5"
        assert agent.config is running

    # Signed by the site but not runnable here: installed, checked, switched back.
    unrunnable = {
        "may not change [mqtt]": '[mqtt]\nurl = "mqtts://elsewhere.example:8883"\n',
        "may not change [storage]": '[storage]\ndir = "/tmp/elsewhere"\n',
        "evidence.fps": "[evidence]\nfps = 100\n",
        "nowhere.csv": '[gps]\nsource = "route"\nroute_file = "nowhere.csv"\n',
        "neither a camera device nor a video file": '[camera]\nsource = "/missing/bodycam.avi"\n',
    }
    for reason, text in unrunnable.items():
        result = central.command(
            "install_update", path=str(signed(tmp_path, key, "config", "2", {"badge.toml": text}))
        )
        assert not result.ok and result.data["rolled_back"] is True, reason
        assert reason in result.message and result.data["config_version"] == "1.5"
        assert agent.config is running
    not_a_config = signed(tmp_path, key, "config", "2", {"settings.txt": "fps = 1"})
    result = central.command("install_update", path=str(not_a_config))
    assert not result.ok and "holds badge.toml" in result.message

    result = central.command("install_update", url="file:///etc/passwd")
    assert not result.ok and "only http" in result.message
    status = central.next_status()  # still running, still reporting
    assert status.kind == "badge" and status.device == device.device_id
    assert (tmp_path / "updates" / "config" / "current").resolve().name == "1.5"
