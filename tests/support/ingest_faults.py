"""Faults done for real, for the ingest durability tests: ``kuzet central run`` as a process that can be killed,
a device publishing QoS 1 events at a steady rate that remembers which ones the broker acknowledged, and small
file systems (tmpfs mounts) that fill up."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from kuzet.central.broker import free_port
from kuzet.shared import messages
from support.ingest import REPO, event, new_id, up, wait_for


class CentralProcess:
    """``kuzet central run`` on ``tmp_path/data`` in a process of its own; ``kill()`` is SIGKILL."""

    def __init__(
        self, tmp_path: Path, broker_url: str, ingest: dict | None = None, storage: dict | None = None
    ):
        self.http_port = free_port()
        self.data_dir = tmp_path / "data"
        self.config = tmp_path / "central.toml"
        lines = [f'[mqtt]\nurl = "{broker_url}"\n', f"[http]\nport = {self.http_port}\n"]
        storage = {"dir": str(self.data_dir), **(storage or {})}
        # The test's devices are not provisioned: central takes them as a demo does (``accept_unregistered``).
        ingest = {"accept_unregistered": True, **(ingest or {})}
        for name, section in (("storage", storage), ("ingest", ingest)):
            lines.append(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in section.items()))
        self.config.write_text("\n".join(lines))
        self.log = tmp_path / "central.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait_s: float = 60, healthy: bool = True) -> CentralProcess:
        """Start the process; wait for /healthz to say 200 (``healthy``) or that ingest is subscribed."""
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kuzet.shared.cli", "central", "--config", str(self.config), "run"],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self._ready(healthy), timeout_s=wait_s, what="central's /healthz")
        return self

    def _ready(self, healthy: bool) -> bool:
        status, body = self.healthz()
        subscribed = ((body.get("ingest") or {}).get("mqtt") or {}).get("subscribed")
        return status == 200 or (not healthy and bool(subscribed))

    def count(self, table: str) -> int:
        """Rows in ``table``; 0 when there is no such table."""
        try:
            return self.query(f"SELECT count(*) FROM {table}")[0][0]
        except sqlite3.OperationalError:
            return 0

    def healthz(self) -> tuple[int | None, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return None, {}

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def query(self, sql: str, params=()) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.data_dir / "kuzet.db", timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()

    def event_ids(self) -> set[str]:
        return {row[0] for row in self.query("SELECT event_id FROM events")}


class SteadyCamera:
    """A camera publishing QoS 1 events at ``rate`` a second with plain paho; ``acknowledged`` holds the ids of
    the events the broker acknowledged (PUBACK): those the system has promised to keep."""

    def __init__(self, broker_url: str, device: str = "cam-durable", rate: float = 200):
        host, port = broker_url.split("//", 1)[1].rsplit(":", 1)
        self.device = device
        self.rate = rate
        self._sent: list[tuple[str, paho.MQTTMessageInfo]] = []  # appended by the publishing thread only
        self._stop = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{device}-test", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(0)
        self.client.connect(host, int(port))
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def acknowledged(self) -> set[str]:
        return {event_id for event_id, info in list(self._sent) if info.is_published()}

    def start(self) -> SteadyCamera:
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = 1 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            event_id = new_id()
            payload = messages.encode(event(self.device, event_id, 0))
            self._sent.append((event_id, self.client.publish(up(self.device, "event"), payload, qos=1)))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        wait_for(
            lambda: all(info.is_published() for _, info in self._sent),
            timeout_s=30,
            what="the broker's PUBACK for every event sent",
        )
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "4m"):
    """A tmpfs of ``size`` mounted at ``path`` (created), unmounted afterwards. Tests run as root here."""
    if shutil.which("mount") is None:
        raise RuntimeError("no mount command")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Write a file in ``folder`` until its file system has at most ``leave_bytes`` free; returns the file."""
    ballast = folder / "ballast"
    with ballast.open("wb") as out:
        block = b"\0" * 65536
        while shutil.disk_usage(folder).free > leave_bytes:
            try:
                out.write(block[: max(4096, min(65536, shutil.disk_usage(folder).free - leave_bytes))])
                out.flush()
            except OSError:
                break
    return ballast


def clip(data: bytes, device: str = "cam-1", piece: int = 1000) -> list[messages.ClipChunk]:
    """``data`` as the chunks a device sends (a clip of no event)."""
    whole = {"device": device, "clip_id": new_id(), "size": len(data), "content_type": "video/mp4"}
    whole |= {"sha256": hashlib.sha256(data).hexdigest(), "count": -(-len(data) // piece)}
    chunks = []
    for index in range(whole["count"]):
        part = data[index * piece : (index + 1) * piece]
        digest = hashlib.sha256(part).hexdigest()
        chunks.append(
            messages.ClipChunk(index=index, chunk_sha256=digest, data=messages.to_base64(part), **whole)
        )
    return chunks
