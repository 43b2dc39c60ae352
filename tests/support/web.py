"""Helpers for the web tests: a central with accounts, and rows as ingest writes them (until ingest is used)."""

from __future__ import annotations

import hashlib
import json
import re

from kuzet.central.auth import tokens, users
from kuzet.central.config import CentralConfig
from kuzet.central.context import Central
from kuzet.central.store import portable
from kuzet.shared import ids, timeutil

PASSWORD = "correct horse battery"
ROLES = ("operator", "supervisor", "technician", "admin")


def make_central(tmp_path, **config) -> Central:
    config["ingest"] = {
        "accept_unregistered": True,
        **config.get("ingest", {}),
    }  # unless a test says otherwise
    # The page's words in English, as the older tests read them; tests of the languages say "ru" or "kk".
    config["site"] = {"language": "en", **config.get("site", {})}
    central = Central(config=CentralConfig.model_validate(config), data_dir=tmp_path / "data")
    for role in ROLES:
        users.create_user(central.db(), role, PASSWORD, role, role.capitalize(), actor="test")
    return central


def token_for(central: Central, username: str) -> str:
    return tokens.create_token(central.db(), username, "tests", actor="test")


def insert_row(db, table: str, row: dict) -> None:
    """One row as written, on either store's connection (committed)."""
    columns = ", ".join(row)
    with portable.transaction(db):
        portable.execute(
            db, f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )


def insert_event(central: Central, **fields) -> dict:
    return store_event(central.db(), **fields)


def store_event(db, **fields) -> dict:
    """An event row as ingest stores it, on either store's connection; ``fields`` override the defaults."""
    now = timeutil.now_wire()
    row = {
        "event_id": ids.new_id(),
        "device": "cam-01",
        "site": "pavlodar",
        "event_type": "loitering",
        "severity": "high",
        "severity_rank": 3,
        "edge_state": "open",
        "seq": 0,
        "label": "person",
        "score": 0.87,
        "zone": "platform",
        "track_ids": json.dumps([4]),
        "box": json.dumps({"x": 10, "y": 20, "w": 30, "h": 60}),
        "lat": 52.2875,
        "lon": 76.9680,
        "started_at": now,
        "received_at": now,
        "updated_at": now,
        "status": "new",
    }
    row.update(fields)
    insert_row(db, "events", row)
    return row


def insert_media(central: Central, data: bytes, kind: str, content_type: str, event_id: str) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    path = central.media_dir / sha256[:2] / sha256
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    central.db()["media"].insert(
        {
            "sha256": sha256,
            "kind": kind,
            "content_type": content_type,
            "size": len(data),
            "path": str(path.relative_to(central.media_dir)),
            "created_at": timeutil.now_wire(),
            "event_id": event_id,
            "device": "cam-01",
        }
    )
    return sha256


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def login(client, username: str, password: str = PASSWORD):
    page = client.get("/login").get_data(as_text=True)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_token(page)}
    )


# --- a running central: Mosquitto, ingest and the web server, and a camera that talks to it ---------------


class LiveCentral:
    """Central running as ``kuzet central run`` runs it (``central.service.start_parts``: ingest, routing,
    device commands, retention and the web page) against a real broker, with the page on a free port."""

    def __init__(self, tmp_path, broker_url: str, **config):
        import contextlib

        from kuzet.central.service import start_parts

        self.central = make_central(tmp_path, mqtt={"url": broker_url}, **config)
        self._running = contextlib.ExitStack()
        self.parts = start_parts(self.central, self._running, web_host="127.0.0.1", web_port=0)
        self.web, self.routing, self.ingest = self.parts.web, self.parts.routing, self.parts.ingest
        self.web.app.config["SSE_HEARTBEAT_S"] = 0.5  # notice closed streams quickly when tests end

    def stop(self) -> None:
        self._running.close()


class Camera:
    """A camera as far as central can tell: it publishes events, snapshots and clip chunks over MQTT."""

    def __init__(self, broker_url: str, device: str = "cam-01", site: str = "pavlodar"):
        from kuzet.shared.config import MqttSection
        from kuzet.shared.mqtt import Link

        self.device, self.site = device, site
        self.link = Link(MqttSection(url=broker_url), f"test-{device}").start()

    def send(self, message) -> None:
        from kuzet.shared import messages, topics

        self.link.publish(
            topics.up(self.site, self.device, message.type), messages.encode(message)
        ).wait_for_publish(5)

    def event(self, event_id: str, seq: int = 0, state: str = "open", **fields):
        from datetime import timedelta

        from kuzet.shared import messages

        values = dict(
            device=self.device,
            event_id=event_id,
            seq=seq,
            state=state,
            event_type="loitering",
            severity="high",
            label="person",
            score=0.91,
            started_at=timeutil.utc_now() - timedelta(seconds=20),
            ended_at=timeutil.utc_now() if state == "closed" else None,
            zone="platform",
            track_ids=[7],
            box=messages.Box(x=120, y=80, w=60, h=150),
            location=messages.GeoPoint(lat=52.2871, lon=76.9652),
        )
        values.update(fields)
        self.send(messages.Event(**values))

    def snapshot(self, event_id: str, jpeg: bytes, width: int, height: int) -> str:
        from kuzet.shared import messages

        sha256 = hashlib.sha256(jpeg).hexdigest()
        self.send(
            messages.Snapshot(
                device=self.device,
                event_id=event_id,
                sha256=sha256,
                width=width,
                height=height,
                data=messages.to_base64(jpeg),
            )
        )
        return sha256

    def clip(self, event_id: str, data: bytes, content_type: str, chunk_size: int = 16_384) -> str:
        from kuzet.shared import messages

        clip_id, sha256 = ids.new_id(), hashlib.sha256(data).hexdigest()
        parts = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        for index, part in enumerate(parts):
            self.send(
                messages.ClipChunk(
                    device=self.device,
                    clip_id=clip_id,
                    event_id=event_id,
                    index=index,
                    count=len(parts),
                    size=len(data),
                    sha256=sha256,
                    chunk_sha256=hashlib.sha256(part).hexdigest(),
                    content_type=content_type,
                    data=messages.to_base64(part),
                )
            )
        return sha256

    def stop(self) -> None:
        self.link.stop()


def h264_clip(path, seconds: float = 3.0, fps: int = 10) -> bytes:
    """A short clip of a box crossing a street-grey frame, written as the cameras write theirs: H.264 in
    fragmented MP4 (edge.evidence.video), which central serves as video/mp4."""
    import cv2
    import numpy as np

    from kuzet.edge.evidence.video import ClipWriter, choose_codec

    codec = choose_codec("h264")
    assert codec.name == "h264", "no H.264 encoder here"
    writer = ClipWriter(path, codec, (320, 240), fps, max_bytes=10_000_000, max_bit_rate=1_000_000)
    for i in range(int(seconds * fps)):
        frame = np.full((240, 320, 3), 60, np.uint8)
        cv2.rectangle(frame, (10 + i * 9, 70), (50 + i * 9, 190), (40, 200, 255), -1)
        writer.write(frame)
    writer.close()
    return path.read_bytes()


def jpeg(width: int = 320, height: int = 240) -> bytes:
    import cv2
    import numpy as np

    frame = np.full((height, width, 3), 70, np.uint8)
    cv2.rectangle(frame, (120, 80), (180, 230), (0, 0, 255), 3)
    return cv2.imencode(".jpg", frame)[1].tobytes()
