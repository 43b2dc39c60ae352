"""`kuzet demo` as a person runs it: every part a real process (central, two cameras on real footage through
the real detector, two badges, the demo's own broker). Headless, it must meet its own criteria; running, a
person following docs/protocol.md with the real `mosquitto_pub` gets an event onto the page's API, and a
malformed message is dead-lettered with its reason while every process stays up."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kuzet.central.broker import free_port
from kuzet.central.demo import footage
from kuzet.models import store

pytestmark = [pytest.mark.slow, pytest.mark.broker]  # the demo starts its own Mosquitto

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
MOSQUITTO_PUB = re.compile(r"^mosquitto_pub -h 127\.0\.0\.1 -q 1 -t (\S+) -m '(.*)'$", re.M)


def kuzet() -> list[str]:
    """The installed `kuzet` command beside this interpreter, as a person runs it."""
    script = Path(sys.executable).parent / "kuzet"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kuzet.shared.cli"]


@pytest.fixture
def demo_env(tmp_path, shared_dir) -> dict[str, str]:
    """The demo's environment: its footage and the default detector, or a skip saying which is missing."""
    try:
        footage.find_vtest()
    except footage.FootageMissing as exc:
        pytest.skip(f"the demo's footage is missing: {exc}")
    env = dict(os.environ, KUZET_HOME=str(tmp_path / "kuzet-home"), KUZET_SHARED=str(shared_dir))
    previous = os.environ.get("KUZET_HOME")
    os.environ["KUZET_HOME"] = env["KUZET_HOME"]
    try:
        store.ensure(
            allow_download=False, progress=False
        )  # a local copy (../shared/models), never a download
    except store.ModelError as exc:
        pytest.skip(f"the demo's detector model is missing: {exc}")
    finally:
        if previous is None:
            os.environ.pop("KUZET_HOME")
        else:
            os.environ["KUZET_HOME"] = previous
    return env


def test_the_demo_meets_its_own_criteria(demo_env, tmp_path):
    done = subprocess.run(
        [
            *kuzet(),
            "demo",
            "--duration",
            "45",
            "--json",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(free_port()),
        ],
        cwd=REPO,
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])  # one JSON object, nothing else on stdout
    assert set(result) == {"events", "clips", "dispatches", "acknowledged", "errors"}
    assert result["events"] > 0 and result["clips"] > 0 and result["acknowledged"] > 0
    assert result["errors"] == 0
    assert result["dispatches"] >= result["acknowledged"]


class RunningDemo:
    """`kuzet demo` in the foreground, as in a terminal: its output is collected line by line."""

    def __init__(self, env: dict[str, str], root: Path, port: int):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*kuzet(), "demo", "--dir", str(root), "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            assert self.process.poll() is None, "the demo ended:\n" + "\n".join(self.lines[-30:])
            time.sleep(0.2)
        raise AssertionError(
            f"no line matching {pattern!r} in {timeout_s} s:\n" + "\n".join(self.lines[-30:])
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reader.join(timeout=10)
        return self.process.wait()


def api_get(port: int, token: str, path: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, {}


def poll(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def test_mosquitto_pub_as_the_protocol_page_says_reaches_the_running_demo(demo_env, tmp_path):
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub is not installed (apt-get install mosquitto-clients)")
    (good_topic, good), (bad_topic, bad) = MOSQUITTO_PUB.findall(DOC.read_text())
    root, port = tmp_path / "demo", free_port()
    demo = RunningDemo(demo_env, root, port)
    try:
        # The demo says where its broker is, as the protocol page tells people to look for.
        broker = demo.wait_for_line(r"Broker: mqtt://127\.0\.0\.1:(\d+)", timeout_s=120)
        broker_port = broker.group(1)
        token = subprocess.run(
            [
                *kuzet(),
                "central",
                "--config",
                str(root / "central.toml"),
                "create-token",
                "supervisor",  # the demo's supervisor reads events and the dead letters
                "--name",
                "test",
            ],
            cwd=REPO,
            env=demo_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]

        def publish(topic: str, payload: str) -> None:
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    broker_port,
                    "-q",
                    "1",
                    "-t",
                    topic,
                    "-m",
                    payload,
                ],
                check=True,
                timeout=30,
            )

        publish(good_topic, good)
        sent = json.loads(good)

        def stored():
            status, body = api_get(port, token, f"/events/{sent['event_id']}")
            return body.get("event") if status == 200 else None

        event = poll(stored, 30, "the published event in central's API")
        assert (event["device"], event["event_type"], event["zone"], event["seq"]) == (
            "cam-0001",
            "loitering",
            "bus-stop",
            0,
        )
        assert event["score"] == pytest.approx(0.87) and event["started_at"] == sent["started_at"]

        publish(bad_topic, bad)

        def dead_lettered():
            status, body = api_get(port, token, "/dead-letters")
            return (
                [d for d in body.get("dead_letters", []) if d["topic"] == bad_topic]
                if status == 200
                else None
            )

        [letter] = poll(dead_lettered, 30, "the malformed message in the dead letters")
        assert "missing field 'id'" in letter["reason"] and "field 'score'" in letter["reason"]
        assert json.loads(letter["payload_preview"]) == json.loads(bad)  # kept for inspection

        # Every process stays up: the demo ends itself as soon as any of its processes stops.
        time.sleep(3)
        assert demo.process.poll() is None, "\n".join(demo.lines[-30:])
        assert api_get(port, token, f"/events/{sent['event_id']}")[0] == 200
        troubles = [
            i for i, line in enumerate(demo.lines) if "stopped unexpectedly" in line or "Traceback" in line
        ]
        assert not troubles, "\n".join(demo.lines[max(0, troubles[0] - 5) : troubles[0] + 40])
    finally:
        code = demo.stop()
    assert code == 0, "\n".join(demo.lines[-30:])  # Ctrl-C stops everything cleanly
