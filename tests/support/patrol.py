"""Helpers for the badge and routing tests: a central running real ingest and routing, badges on a route,
and a camera that raises events over MQTT."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import tomli_w

from kuzet.central.ingest.service import IngestService
from kuzet.central.routing.geo import offset
from kuzet.central.routing.service import RoutingService
from kuzet.central.service import start_parts
from kuzet.edge.badge.agent import BadgeAgent
from kuzet.edge.badge.config import BadgeConfig
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Event, encode
from kuzet.shared.mqtt import Link
from support.ingest import REPO, SITE, make_central, wait_for

HOME = (52.2873, 76.9674)  # Pavlodar

__all__ = ["SITE", "wait_for"]  # re-exported for the tests


def point(north_m: float, east_m: float = 0.0) -> tuple[float, float]:
    return offset(*HOME, north_m, east_m)


class Centre:
    """Central over a real broker, started as ``kuzet central run`` starts it (``start_parts``: ingest,
    routing, device commands, retention), without its web page."""

    def __init__(self, tmp_path: Path, url: str | list[str], protocol: str = "5", **routing):
        brokers = [url] if isinstance(url, str) else url
        self.central = make_central(
            tmp_path, mqtt={"brokers": brokers, "protocol": protocol}, routing=routing
        )
        self.live = self.central.hub.subscribe()  # everything published for the page, in order
        self.published: list = []
        self._running = contextlib.ExitStack()
        parts = start_parts(self.central, self._running, web=False)
        self.ingest: IngestService = parts.ingest
        self.routing: RoutingService = parts.routing
        self.operations = parts.operations  # the one door (central.operations)

    def stop(self) -> None:
        self._running.close()

    def db(self):
        return self.central.db()

    def dispatches(self, **where) -> list[dict]:
        rows = self.db()["dispatches"].rows_where(order_by="created_at")
        return [r for r in rows if all(r[k] == v for k, v in where.items())]

    def log_states(self, dispatch_id: str) -> list[str]:
        return [
            r["state"]
            for r in self.db()["dispatch_log"].rows_where("dispatch_id = ?", [dispatch_id], order_by="id")
        ]

    def unit(self, device: str):
        return self.routing.units.get(device)

    def updates(self, channel: str) -> list[dict]:
        """What has been published for the page on ``channel`` so far."""
        while (update := self.live.get(0.01)) is not None:
            self.published.append(update)
        return [u.data for u in self.published if u.channel == channel]

    def alert_texts(self) -> list[str]:
        return [data["message"] for data in self.updates("alert")]

    def event_audit(self, event_id: str) -> list[tuple[str, str]]:
        """(actor, action) of every audit entry about the event, oldest first."""
        rows = self.db()["audit"].rows_where("target = ?", [f"event:{event_id}"], order_by="seq")
        return [(r["actor"], r["action"]) for r in rows]


def badge_config(
    tmp_path: Path, url: str | list[str], device: str, at: tuple[float, float], **sections
) -> BadgeConfig:
    """A badge standing at ``at`` (a two-point route a metre long), evidence off unless asked for. ``url``: one
    broker, or the list of ``[mqtt] brokers``."""
    route = tmp_path / f"{device}-route.csv"
    route.write_text(f"lat,lon\n{at[0]},{at[1]}\n{at[0] + 0.00001},{at[1]}\n")
    data = {
        "device": {"id": device, "site": SITE, "name": device.upper()},
        "mqtt": {"brokers": [url] if isinstance(url, str) else url, "keepalive_s": 5},
        "badge": {"initial_duty": "available", "status_interval_s": 30},
        "gps": {
            "source": "route",
            "route_file": str(route),
            "route_speed_mps": 0.01,
            "report_interval_s": 30,
        },
        "evidence": {"enabled": False},
        "storage": {"dir": str(tmp_path / device)},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return BadgeConfig.model_validate(data)


def start_badge(
    tmp_path: Path,
    url: str | list[str],
    device: str,
    at: tuple[float, float],
    centre: Centre | None = None,
    **sections,
) -> BadgeAgent:
    agent = BadgeAgent(badge_config(tmp_path, url, device, at, **sections)).start()
    if centre is not None:
        wait_for(
            lambda: (u := centre.unit(device)) and u.online and u.lat is not None, what=f"{device} registered"
        )
    return agent


class BadgeProcess:
    """``kuzet badge --no-tui`` in a process of its own, as the badge's systemd unit runs it: it can be frozen
    (SIGSTOP: it goes silent without closing its connection, as a badge out of coverage does, and the broker
    notices only when the keep-alive runs out), killed (SIGKILL: no goodbye) or stopped (SIGTERM)."""

    def __init__(self, config: Path, log: Path):
        self.log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kuzet.shared.cli", "badge", "--no-tui", "--config", str(config)],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.log.close()


def badge_process(tmp_path: Path, url: str, device: str, at: tuple[float, float], **sections) -> BadgeProcess:
    """A ``BadgeProcess`` configured as ``badge_config`` configures one. Started again as ``start_badge`` with
    the same ``tmp_path`` and device, it is the same badge: storage and MQTT session."""
    config = badge_config(tmp_path, url, device, at, **sections)
    path = tmp_path / f"{device}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    return BadgeProcess(path, tmp_path / f"{device}.log")


class Camera:
    """A street camera raising events over MQTT, as an edge agent would."""

    def __init__(self, url: str, device: str = "cam-1", protocol: str = "5"):
        self.device = device
        self.link = Link(MqttSection(url=url, protocol=protocol), f"{device}-test").start()

    def event(
        self, at: tuple[float, float] | None, event_type: str = "loitering", severity: str = "high", **fields
    ) -> str:
        event_id = fields.pop("event_id", None) or ids.new_id()
        message = Event(
            device=self.device,
            event_id=event_id,
            seq=0,
            state="open",
            event_type=event_type,
            severity=severity,
            label="person",
            score=0.9,
            started_at=timeutil.utc_now() - timedelta(seconds=2),
            location={"lat": at[0], "lon": at[1]} if at else None,
            description=fields.pop("description", f"{event_type} by the bus stop"),
            **fields,
        )
        self.link.publish(topics.up(SITE, self.device, "event"), encode(message)).wait_for_publish(5)
        return event_id

    def raw(self, topic: str, payload: bytes) -> None:
        self.link.publish(topic, payload).wait_for_publish(5)

    def stop(self) -> None:
        self.link.stop()


def inbox_has(agent: BadgeAgent, dispatch_id: str | None = None):
    def check():
        items = agent.inbox.items()
        return [i for i in items if dispatch_id is None or i.dispatch_id == dispatch_id]

    return check
