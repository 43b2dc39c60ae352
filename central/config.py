"""Central's configuration file (TOML), checked on load. Every key has a default that works for the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from kuzet.central.ingest.config import IngestSection
from kuzet.central.routing.config import RoutingSection
from kuzet.shared import config
from kuzet.shared.config import KeyProblem, MqttSection, Name, Section


class CentralSection(Section):
    site: Name = "pavlodar"
    name: str = "Kuzet operations centre"


class HttpSection(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    threads: Annotated[int, Field(ge=1, le=2000)] = 64  # one per open live stream (SSE) plus requests
    # A file holding the session-signing secret; created with a random secret on first start.
    secret_key_file: Path = Path("secret.key")
    secure_cookies: bool = False  # set true behind HTTPS


class BrokerSection(Section):
    # Run a broker inside central (for the demo on a machine with no Mosquitto); production uses Mosquitto.
    embedded: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883


class StorageSection(Section):
    dir: Path = Path("data")
    retention_days: Annotated[float, Field(gt=0)] = 30
    max_media_gb: Annotated[float, Field(gt=0)] = 50
    dead_letter_payload_bytes: Annotated[int, Field(ge=256, le=1_048_576)] = 65_536
    # /healthz answers 503 (and the devices page warns) when the data or media folder's disk has less free.
    min_free_mb: Annotated[float, Field(ge=0)] = 500
    # The audit log's HMAC key (created 0600 on first start; never in the database). Relative paths are in the
    # data directory, beside the database; a deployment should put it on another volume (an absolute path) so
    # that a copy or theft of the data volume does not carry it.
    audit_key_file: Path = Path("audit.key")


class MapSection(Section):
    # Tiles are optional: an operations centre may be offline. Empty = no tiles, markers on a plain grid.
    tile_url: str = ""
    tile_attribution: str = ""
    center_lat: float = 52.2873  # Pavlodar
    center_lon: float = 76.9674
    zoom: Annotated[int, Field(ge=1, le=19)] = 14


class CentralConfig(Section):
    central: CentralSection = CentralSection()
    http: HttpSection = HttpSection()
    mqtt: MqttSection = MqttSection()
    broker: BrokerSection = BrokerSection()
    storage: StorageSection = StorageSection()
    ingest: IngestSection = IngestSection()
    map: MapSection = MapSection()
    routing: RoutingSection = RoutingSection()

    @model_validator(mode="after")
    def _shared_subscriptions_need_mqtt_5(self) -> CentralConfig:
        # MQTT 5 defines shared subscriptions, and its CONNACK says whether the broker has them. Under 3.1.1 a
        # broker without them (NATS's MQTT listener, docs/brokers.md) accepts "$share/..." and delivers
        # nothing to it: ingest would store nothing and say nothing.
        if self.ingest.share_group and self.mqtt.protocol != "5":
            raise KeyProblem(
                ("ingest", "share_group"),
                'shared subscriptions need [mqtt] protocol = "5" and a broker that has them (Mosquitto, EMQX, '
                "HiveMQ, VerneMQ; not NATS's MQTT listener): remove share_group or change the protocol",
            )
        return self


def load(path: str | Path | None) -> CentralConfig:
    if path is None:
        return CentralConfig()
    return config.load(path, CentralConfig)
