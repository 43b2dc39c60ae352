"""Signed updates on a device: good bundles install with the old version kept; unsigned, foreign-signed,
tampered and older bundles are refused and the device keeps running what it had. Bundles come from a URL
(a real HTTP server, with size limits) or a path; the real camera agent, provisioned by site-init and
connected to its Mosquitto, installs models and configurations by command and runs them, and keeps running
the old ones, still reporting status, when a bad bundle comes."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest
from support.updates import Served, provision, rewrite

from kuzet.edge.camera.agent import CameraAgent
from kuzet.edge.camera.config import load as load_camera
from kuzet.edge.updates.fetch import FetchError, fetch_bundle
from kuzet.edge.updates.installer import install, rollback, version_key
from kuzet.models import store
from kuzet.provisioning import signing
from kuzet.shared import ids, messages, topics

MODEL_V1 = b"\x00tflite-model-v1" * 100
MODEL_V2 = b"\x00tflite-model-v2" * 100


@pytest.fixture
def site_key(tmp_path):
    signing.create_keypair(tmp_path / "update.key", tmp_path / "update.pub")
    return signing.load_private_key(tmp_path / "update.key"), tmp_path / "update.pub"


def make_bundle(tmp_path: Path, key, version: str, data: bytes) -> Path:
    source = tmp_path / f"src-{version}"
    source.mkdir(parents=True)
    (source / "detect.tflite").write_bytes(data)
    (source / "labelmap.txt").write_text("person\ncar\n")
    out = tmp_path / f"model-{version}.tar"
    signing.sign_update(source, out, key, "model", version)
    return out


@pytest.fixture
def installed_v1(tmp_path, site_key):
    key, public = site_key
    device = tmp_path / "device"
    result = install(make_bundle(tmp_path, key, "1.0", MODEL_V1), public, device)
    assert result.ok and result.version == "1.0"
    return device


def running_model(device: Path) -> bytes:
    return (device / "current" / "detect.tflite").read_bytes()


def test_good_bundle_installs_and_keeps_previous_for_rollback(tmp_path, site_key, installed_v1):
    key, public = site_key
    result = install(make_bundle(tmp_path, key, "2.0", MODEL_V2), public, installed_v1, expected_kind="model")
    assert result.ok, result.message
    assert (result.version, result.previous_version) == ("2.0", "1.0")
    assert running_model(installed_v1) == MODEL_V2
    back = rollback(installed_v1)
    assert back.ok and back.version == "1.0"
    assert running_model(installed_v1) == MODEL_V1


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda n, d: d.replace(b"v2", b"XX") if n.endswith(".tflite") else d, "checksum mismatch"),
        (lambda n, d: None if n == signing.SIGNATURE else d, "unsigned"),
        (lambda n, d: d.replace(b'"2.0"', b'"2.1"') if n == signing.MANIFEST else d, "bad signature"),
        (lambda n, d: None if n.endswith("labelmap.txt") else d, "missing"),
    ],
    ids=["file-changed", "signature-removed", "manifest-changed", "file-dropped"],
)
def test_tampered_bundle_is_refused_and_old_version_keeps_running(
    tmp_path, site_key, installed_v1, tamper, reason
):
    key, public = site_key
    good = make_bundle(tmp_path, key, "2.0", MODEL_V2)
    bad = rewrite(good, tmp_path / "bad.tar", tamper)
    result = install(bad, public, installed_v1)
    assert not result.ok and result.refused
    assert reason in result.message
    assert result.version == "1.0"
    assert running_model(installed_v1) == MODEL_V1
    assert not (installed_v1 / "versions" / "2.0").exists()
    # what the agent sends back to central for the install_update command
    topic = topics.up("pavlodar", "cam-0a1b2c3d", "command_result")
    sent = messages.decode(topic, messages.encode(result.command_result("cam-0a1b2c3d", ids.new_id())))
    assert sent.ok is False and sent.data["refused"] is True and sent.data["version"] == "1.0"
    assert reason in sent.message


def test_bundle_signed_by_another_site_is_refused(tmp_path, site_key, installed_v1):
    _, public = site_key
    signing.create_keypair(tmp_path / "rogue.key", tmp_path / "rogue.pub")
    rogue = signing.load_private_key(tmp_path / "rogue.key")
    result = install(make_bundle(tmp_path, rogue, "2.0", MODEL_V2), public, installed_v1)
    assert result.refused and "bad signature" in result.message
    assert running_model(installed_v1) == MODEL_V1


def test_extra_file_smuggled_into_bundle_is_refused(tmp_path, site_key, installed_v1):
    key, public = site_key
    good = make_bundle(tmp_path, key, "2.0", MODEL_V2)
    bad = tmp_path / "extra.tar"
    rewrite(good, bad, lambda n, d: d)
    with tarfile.open(bad, "a") as tar:
        info = tarfile.TarInfo("files/../../etc/cron.d/x")
        payload = b"* * * * * root sh"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    result = install(bad, public, installed_v1)
    assert result.refused and "escapes" in result.message
    assert running_model(installed_v1) == MODEL_V1


def test_not_a_bundle_is_refused(tmp_path, site_key, installed_v1):
    _, public = site_key
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 50)
    result = install(junk, public, installed_v1)
    assert result.refused and running_model(installed_v1) == MODEL_V1


def test_failed_post_install_check_rolls_back(tmp_path, site_key, installed_v1):
    key, public = site_key

    def load_model(folder: Path) -> None:
        if b"v2" in (folder / "detect.tflite").read_bytes():
            raise RuntimeError("model does not load on this device")

    result = install(make_bundle(tmp_path, key, "2.0", MODEL_V2), public, installed_v1, check=load_model)
    assert not result.ok and result.rolled_back and not result.refused
    assert result.version == "1.0" and "does not load" in result.message
    assert running_model(installed_v1) == MODEL_V1


def test_wrong_kind_is_refused(tmp_path, site_key, installed_v1):
    key, public = site_key
    result = install(
        make_bundle(tmp_path, key, "2.0", MODEL_V2), public, installed_v1, expected_kind="config"
    )
    assert result.refused and running_model(installed_v1) == MODEL_V1


# --- versions ---------------------------------------------------------------------------------------------


def test_an_older_version_is_refused_as_a_downgrade(tmp_path, site_key, installed_v1):
    key, public = site_key
    assert install(make_bundle(tmp_path, key, "1.10", MODEL_V2), public, installed_v1).ok  # 10 > 0 as numbers
    result = install(make_bundle(tmp_path, key, "1.9", MODEL_V1), public, installed_v1)
    assert result.refused and not result.ok
    assert "older than the installed 1.10" in result.message and "rollback_update" in result.message
    assert running_model(installed_v1) == MODEL_V2 and not (installed_v1 / "versions" / "1.9").exists()


def test_the_same_version_again_changes_nothing_unless_its_contents_differ(tmp_path, site_key, installed_v1):
    key, public = site_key
    again = install(make_bundle(tmp_path / "again", key, "1.0", MODEL_V1), public, installed_v1)
    assert again.ok and "already installed" in again.message  # a resent command
    other = install(make_bundle(tmp_path / "other", key, "1.0", MODEL_V2), public, installed_v1)
    assert other.refused and "other contents" in other.message
    assert running_model(installed_v1) == MODEL_V1


def test_versions_compare_part_by_part_numbers_as_numbers():
    ordered = ["1", "1.0", "1.0.1", "1.2", "1.10", "2", "2026.11.21-1", "2026.11.21-2", "2026.11.22"]
    assert sorted(reversed(ordered), key=version_key) == ordered


# --- delivery ---------------------------------------------------------------------------------------------


def test_a_bundle_is_fetched_from_a_url_within_the_size_limit(tmp_path, site_key, served):
    key, _ = site_key
    www, server = served
    bundle = make_bundle(tmp_path, key, "2.0", MODEL_V2)
    (www / "m.tar").write_bytes(bundle.read_bytes())
    downloads = tmp_path / "downloads"
    got, downloaded = fetch_bundle(url=server.url("m.tar"), path=None, downloads=downloads, max_bytes=2**20)
    assert downloaded and got.read_bytes() == bundle.read_bytes()
    with pytest.raises(FetchError, match="more than the 0 MiB"):  # announced too large: never downloaded
        fetch_bundle(url=server.url("m.tar"), path=None, downloads=downloads, max_bytes=1000)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_bundle(url=server.url("nope.tar"), path=None, downloads=downloads, max_bytes=2**20)
    with pytest.raises(FetchError, match="only http"):
        fetch_bundle(url="file:///etc/passwd", path=None, downloads=downloads, max_bytes=2**20)
    with pytest.raises(FetchError, match="exactly one"):
        fetch_bundle(url=server.url("m.tar"), path=str(bundle), downloads=downloads, max_bytes=2**20)
    with pytest.raises(FetchError, match="larger than"):
        fetch_bundle(url=None, path=str(bundle), downloads=downloads, max_bytes=1000)
    assert [p for p in downloads.iterdir() if p != got] == []  # refused downloads leave nothing behind


def test_a_server_that_sends_more_than_it_may_is_cut_off(tmp_path):
    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # no Content-Length: the limit must hold while reading
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass  # the device hung up: what we want

        def log_message(self, *args):
            pass

    server = Served(tmp_path, Endless)
    downloads = tmp_path / "downloads"
    try:
        with pytest.raises(FetchError, match="sent more than the 1 MiB"):
            fetch_bundle(url=server.url("x"), path=None, downloads=downloads, max_bytes=2**20)
    finally:
        server.close()
    assert list(downloads.iterdir()) == []


# --- the camera agent, against site-init's broker -----------------------------------------------------------


@pytest.fixture
def camera(tmp_path, mosquitto_factory, footage, monkeypatch):
    """A provisioned camera (site-init's CA and broker) running the real agent on real footage."""
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    store.ensure(allow_download=False, progress=False)
    device = provision(tmp_path, mosquitto_factory, "camera", "Toraigyrov / Lomov")
    config = device.config
    assert config["updates"]["public_key"] == "update.pub"  # provisioned for updates, checked below for real
    config["updates"]["install_dir"] = str(tmp_path / "updates")  # instead of /var/lib/kuzet/camera/updates
    config["storage"]["dir"] = str(tmp_path / "state")
    config |= {
        "source": {"kind": "file", "path": str(footage / "pets09-s2l1" / "vtest.avi"), "loop": True},
        "evidence": {"clips": False},
        "health": {"heartbeat_s": 1},
    }
    path = device.write_config(config)
    central = device.central
    agents = []

    def start() -> CameraAgent:
        agent = CameraAgent(load_camera(path), path)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        agents.append((agent, thread))
        return agent

    yield start, central, device.key
    for agent, thread in agents:
        agent.stop()
        thread.join(timeout=60)
    central.link.stop()


def model_bundle(tmp_path: Path, key, version: str, model: bytes, name: str) -> Path:
    source = tmp_path / f"model-src-{version}"
    source.mkdir(parents=True)
    (source / f"{name}.tflite").write_bytes(model)
    (source / "labels.txt").write_text("\n".join(store.labels()) + "\n")
    out = tmp_path / f"model-{version}.tar"
    signing.sign_update(source, out, key, "model", version)
    return out


def config_bundle(tmp_path: Path, key, version: str, text: str) -> Path:
    source = tmp_path / f"config-src-{version}"
    source.mkdir(parents=True)
    (source / "camera.toml").write_text(text)
    out = tmp_path / f"config-{version}.tar"
    signing.sign_update(source, out, key, "config", version)
    return out


def test_camera_installs_a_model_runs_it_and_keeps_it_when_a_bad_one_comes(tmp_path, camera, served):
    start, central, key = camera
    www, server = served
    detector = store.resolve().read_bytes()
    agent = start()
    assert central.next_status().model.name == store.entry().name  # the configured model, before any update

    # a good model from a URL: checked, installed and run from the next frame on
    (www / "v1.tar").write_bytes(model_bundle(tmp_path, key, "1", detector, "ssd-v1").read_bytes())
    result = central.command("install_update", url=server.url("v1.tar"))
    assert result.ok, result.message
    assert result.data["model_version"] == "1" and result.data["refused"] is False
    assert central.next_status().model.name == "ssd-v1"

    # a tampered one: refused, answered, and the camera carries on with what it had
    good_v2 = model_bundle(tmp_path, key, "2", detector, "ssd-v2")
    tampered = rewrite(
        good_v2, tmp_path / "tampered.tar", lambda n, d: d[:-1] + b"\1" if n.endswith(".tflite") else d
    )
    result = central.command("install_update", path=str(tampered))
    assert not result.ok and result.data["refused"] is True and "checksum mismatch" in result.message
    assert result.data["model_version"] == "1"
    status = central.next_status()
    assert status.model.name == "ssd-v1" and status.source_state == "running" and status.fps_in
    assert agent.pipeline.model_info[0] == "ssd-v1"

    # a signed model that does not load: it fails its check, the camera goes back and says so
    broken = model_bundle(tmp_path / "broken", key, "2", b"TFL3 not really a model" * 100, "ssd-v2")
    result = central.command("install_update", path=str(broken))
    assert not result.ok and result.data["rolled_back"] is True and "failed its check" in result.message
    assert result.data["model_version"] == "1" and central.next_status().model.name == "ssd-v1"

    # the good v2, then back with rollback_update, then a downgrade is refused
    result = central.command("install_update", path=str(good_v2))
    assert result.ok and result.data["previous_version"] == "1"
    assert central.next_status().model.name == "ssd-v2"
    result = central.command("rollback_update", kind="model")
    assert result.ok and result.data["model_version"] == "1"
    assert central.next_status().model.name == "ssd-v1"
    older = model_bundle(tmp_path / "older", key, "0.9", detector, "ssd-old")
    result = central.command("install_update", path=str(older))
    assert result.data["refused"] is True and "downgrade" in result.message
    assert central.next_status().model.name == "ssd-v1"

    # what is installed is what a restarted camera runs
    agent.stop()
    assert start().pipeline.model_info[0] == "ssd-v1"


def test_camera_applies_a_config_update_and_refuses_a_bad_one(tmp_path, camera):
    start, central, key = camera
    agent = start()
    central.next_status()
    assert len(agent.config.rules) == 0
    update = """
[[zones]]
name = "square"
polygon = [[0, 0], [768, 0], [768, 576], [0, 576]]

[[rules]]
name = "crowd"
type = "crowd"
zone = "square"
max_count = 3
"""
    result = central.command("install_update", path=str(config_bundle(tmp_path, key, "1", update)))
    assert result.ok, result.message
    assert [r.name for r in agent.config.rules] == ["crowd"] and result.data["config_version"] == "1"
    assert len(agent.engine.rules) == 1

    tampered = rewrite(
        config_bundle(tmp_path / "t", key, "2", update.replace("max_count = 3", "max_count = 4")),
        tmp_path / "tampered.tar",
        lambda n, d: d.replace(b"max_count = 4", b"max_count = 1") if n.endswith(".toml") else d,
    )
    result = central.command("install_update", path=str(tampered))
    assert result.data["refused"] is True and "checksum mismatch" in result.message
    assert agent.config.rules[0].max_count == 3

    # signed but wrong: a rule for a zone that does not exist, or an attempt to move the camera to another broker
    for version, text, reason in (
        ("2", update.replace('zone = "square"', 'zone = "nowhere"'), "nowhere"),
        ("3", '[mqtt]\nurl = "mqtts://elsewhere:8883"\n', "may not change [mqtt]"),
    ):
        result = central.command(
            "install_update", path=str(config_bundle(tmp_path / version, key, version, text))
        )
        assert not result.ok and result.data["rolled_back"] is True and reason in result.message
        assert result.data["config_version"] == "1" and agent.config.rules[0].max_count == 3
    assert central.next_status().source_state == "running"

    # an operator's rollback: back to the configuration file alone
    result = central.command("rollback_update", kind="config")
    assert not result.ok and "no previous version" in result.message  # 1 was the first: nothing before it
    result = central.command("rollback_update", kind="firmware")
    assert not result.ok and "args.kind" in result.message
    agent.stop()
    assert [r.name for r in start().config.rules] == ["crowd"]  # a restart runs the installed config
