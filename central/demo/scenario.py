"""The demo's world: central, two street cameras in central Pavlodar replaying real footage, and two patrol
badges walking routes nearby. Written as the same TOML files a technician would write: plain data (dicts
written with tomli_w). Central's own file is checked here with its configuration class; the devices' files
are checked by the agents that load them (central never imports edge)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from kuzet.central.config import CentralConfig
from kuzet.central.store.registry import Registration
from kuzet.shared import config

SITE = "pavlodar"

# The PETS 2009 view (768x576), as a deployer draws it on a snapshot: the lawn in the foreground (keep off),
# the middle of the path junction in front of the sign (where a group blocks the way), the paved square.
LAWN = [[0, 252], [170, 266], [330, 302], [425, 360], [560, 420], [768, 502], [768, 576], [0, 576]]
JUNCTION = [[300, 215], [600, 200], [700, 300], [640, 400], [440, 380], [300, 300]]
SQUARE = [[0, 205], [768, 190], [768, 470], [440, 380], [0, 265]]
# Thresholds in seconds, chosen for what an inspector watching hundreds of cameras should be shown: a group
# that stays, someone on the lawn, someone running, someone hanging about for minutes; not every passer-by.
CAMERAS = [
    # id, name, lat, lon, zones, rules
    (
        "cam-0001",
        "Central square, Satpayev St mast",
        52.28745,
        76.96705,
        {"junction": JUNCTION, "lawn": LAWN},
        [
            {
                "name": "gathering-at-junction",
                "type": "crowd",
                "zone": "junction",
                "max_count": 3,  # 4 or more people ...
                "min_duration_s": 5.0,  # ... for 5 s; it ends below 3 people for 5 s
                "hysteresis": 1,
                "grace_s": 5.0,
                "cooldown_s": 60.0,
                "severity": "medium",
            },
            {
                "name": "on-the-lawn",
                "type": "zone_enter",
                "zone": "lawn",
                "min_duration_s": 2.0,
                "cooldown_s": 60.0,
                "severity": "low",
            },
        ],
    ),
    (
        "cam-0002",
        "Irtysh embankment, Lermontov St",
        52.29330,
        76.95420,
        {"square": SQUARE},
        [
            {
                "name": "loitering-on-embankment",
                "type": "loitering",
                "zone": "square",
                "dwell_s": 120.0,  # two minutes in one place of a walkway
                "severity": "medium",
            },
            {
                "name": "running-on-embankment",
                "type": "running",
                "zone": "square",
                "min_duration_s": 1.5,
                "severity": "medium",
            },
        ],
    ),
]
# Where each camera looks, for its field of view on the map (degrees from north, width, useful range in m).
CAMERA_VIEWS = {
    "cam-0001": {"heading_deg": 200.0, "fov_deg": 70.0, "view_m": 120.0},
    "cam-0002": {"heading_deg": 320.0, "fov_deg": 60.0, "view_m": 150.0},
}

# Patrol routes (lat, lon): foot patrols around the square and along the embankment.
BADGES = [
    (
        "badge-0001",
        "Sgt. A. Nurlanov",
        [(52.2862, 76.9648), (52.2885, 76.9648), (52.2885, 76.9700), (52.2862, 76.9700), (52.2862, 76.9648)],
    ),
    (
        "badge-0002",
        "Cpl. D. Seitkali",
        [(52.2915, 76.9520), (52.2950, 76.9560), (52.2925, 76.9610), (52.2895, 76.9570), (52.2915, 76.9520)],
    ),
]
DEMO_PASSWORD = "kuzet-demo"  # the demo's accounts only; printed when the demo starts and in the README
# One account per role the README names, each with its own role, so that the demo shows every role's page.
ACCOUNTS = (
    ("operator", "operator", "Demo operator"),
    ("supervisor", "supervisor", "Demo supervisor"),
    ("technician", "technician", "Demo technician"),
)


def create_accounts(database) -> None:
    """The demo's accounts in central's database (reset if they exist)."""
    from kuzet.central.auth.users import create_user

    for username, role, display_name in ACCOUNTS:
        create_user(database, username, DEMO_PASSWORD, role=role, display_name=display_name, actor="demo")


@dataclass(frozen=True)
class Scenario:
    root: Path
    central: Path
    cameras: list[Path]
    badges: list[Path]
    registrations: list[Registration]


def write(
    root: Path,
    broker_url: str,
    mqtt_protocol: str,
    http_port: int,
    embedded_broker: tuple[str, int] | None,
    footage: Path,
    bodycam: Path | None,
) -> Scenario:
    root.mkdir(parents=True, exist_ok=True)
    central_path = _write(
        root / "central.toml",
        CentralConfig,
        {
            "central": {"site": SITE, "name": "Pavlodar operations centre (demo)"},
            "http": {"host": "127.0.0.1", "port": http_port, "secret_key_file": "central/secret.key"},
            "mqtt": {"url": broker_url, "protocol": mqtt_protocol},
            "broker": (
                {"embedded": True, "host": embedded_broker[0], "port": embedded_broker[1]}
                if embedded_broker
                else {"embedded": False}
            ),
            "storage": {"dir": "central"},
            # Every demo device is registered below; this lets a visitor's mosquitto_pub under a new id in too.
            "ingest": {"accept_unregistered": True},
            "routing": {"policy": "auto", "ack_timeout_s": 30},
        },
    )
    cameras = []
    for device_id, name, lat, lon, zones, rules in CAMERAS:
        cameras.append(
            _write(
                root / f"{device_id}.toml",
                None,
                {
                    "device": {"id": device_id, "site": SITE, "name": name, "lat": lat, "lon": lon},
                    "mqtt": {"url": broker_url, "protocol": mqtt_protocol},
                    "source": {"kind": "file", "path": str(footage), "loop": True, "realtime": True},
                    "zones": [{"name": zone, "polygon": polygon} for zone, polygon in zones.items()],
                    "rules": rules,
                    "evidence": {
                        "clip_min_severity": "low",
                        "pre_roll_s": 3.0,
                        "post_roll_s": 3.0,
                        "max_clip_s": 20.0,
                    },
                    "health": {"heartbeat_s": 5.0},
                    "storage": {"dir": f"{device_id}-state"},
                },
            )
        )
    badges = []
    for device_id, name, route in BADGES:
        route_path = root / f"{device_id}-route.geojson"
        route_path.write_text(
            json.dumps(
                {
                    "type": "Feature",
                    "properties": {"name": f"{name}: foot patrol"},
                    "geometry": {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in route]},
                }
            )
        )
        badges.append(
            _write(
                root / f"{device_id}.toml",
                None,
                {
                    "device": {"id": device_id, "site": SITE, "name": name},
                    "mqtt": {"url": broker_url, "protocol": mqtt_protocol},
                    "badge": {"initial_duty": "available", "status_interval_s": 10.0},
                    "gps": {
                        "source": "route",
                        "route_file": route_path.name,
                        "route_speed_mps": 4.0,
                        "report_interval_s": 5.0,
                        "min_movement_m": 20.0,
                    },
                    "camera": {"source": str(bodycam) if bodycam else "0", "loop": True},
                    "evidence": {
                        "enabled": bodycam is not None,
                        "mode": "dispatch",
                        "segment_s": 10.0,
                        "fps": 5.0,
                    },
                    "storage": {"dir": f"{device_id}-data"},
                },
            )
        )
    registrations = [
        Registration(
            device_id=device_id,
            kind="camera",
            name=name,
            site=SITE,
            lat=lat,
            lon=lon,
            **CAMERA_VIEWS[device_id],
        )
        for device_id, name, lat, lon, _, _ in CAMERAS
    ] + [
        Registration(device_id=device_id, kind="badge", name=name, site=SITE) for device_id, name, _ in BADGES
    ]
    return Scenario(root, central_path, cameras, badges, registrations)


def _write(path: Path, model, data: dict) -> Path:
    """Write ``data`` as TOML; with ``model`` (central's own configuration class), refuse a bad file here."""
    path.write_text(tomli_w.dumps(data))
    if model is not None:
        config.load(path, model)
    return path
