"""Central's configuration file (TOML), checked on load. Every key has a default that works for the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from kuzet.central.ingest.config import IngestSection
from kuzet.central.routing.config import RoutingSection
from kuzet.central.watchlist.config import WatchlistSection
from kuzet.shared import config
from kuzet.shared.config import KeyProblem, MqttSection, Name, Section


class CentralSection(Section):
    site: Name = "pavlodar"
    name: str | None = (
        None  # the centre's name in its header; None: "Kuzet operations centre" in each language
    )


def _known_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Almaty)") from None
    return name


def _shift_starts(starts: list[str]) -> list[str]:
    """Shift starts as local "HH:MM" times of day, each once, in order."""
    for start in starts:
        hours, _, minutes = start.partition(":")
        if not (
            len(start) == 5
            and hours.isdigit()
            and minutes.isdigit()
            and int(hours) < 24
            and int(minutes) < 60
        ):
            raise ValueError(f'a shift start is a local time of day such as "08:00", not {start!r}')
    if len(set(starts)) != len(starts):
        raise ValueError(f"shift starts must differ: {starts}")
    return sorted(starts)


class SiteSection(Section):
    # The time zone every time on the page, in CSV and in statistics is shown in; the API keeps ISO-8601 with
    # its offset. Kazakhstan is on UTC+5 (Asia/Almaty) since March 2024.
    timezone: Annotated[str, AfterValidator(_known_time_zone)] = "Asia/Almaty"
    # The page's language for accounts that have not chosen one (ru, kk or en).
    language: Literal["ru", "kk", "en"] = "ru"
    # When the operators' shifts begin, in the site's local time: each shift runs to the next start. The shift
    # log, "my incidents" and the response times per shift follow these boundaries.
    shifts: Annotated[list[str], Field(min_length=1, max_length=24), AfterValidator(_shift_starts)] = [
        "08:00",
        "20:00",
    ]


class TriageSection(Section):
    # Events of one camera, zone and type that start within this many seconds of the one before are one
    # incident on the triage board (re-fires of the same rule fold into a count).
    window_s: Annotated[float, Field(gt=0, le=86_400)] = 600


class HttpSection(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    # Threads answering requests; each open live stream (SSE) holds a thread of its own besides, up to
    # ``streams`` of them (one per open page; a stream beyond is refused and the page tries again).
    threads: Annotated[int, Field(ge=1, le=2000)] = 16
    streams: Annotated[int, Field(ge=1, le=5000)] = 100
    # Connections open at once: an open page holds its stream's and one or more for its requests (a browser up
    # to six). Beyond this central stops accepting, and every page waits (waitress's own default was 100).
    connections: Annotated[int, Field(ge=10, le=20_000)] = 1000
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


class StoreSection(Section):
    # Empty: the embedded SQLite database in the data directory (the demo, a small site). A region sets
    # "postgresql://user@host:5432/kuzet" (central/store/postgres.py); the same repositories run on either.
    url: str = ""
    pool_min: Annotated[int, Field(ge=1, le=100)] = 1
    pool_max: Annotated[int, Field(ge=1, le=500)] = 10
    # Monthly partitions of ``events`` are created this many months ahead, so no insert waits on DDL.
    partitions_ahead_months: Annotated[int, Field(ge=1, le=24)] = 3

    @field_validator("url")
    @classmethod
    def _postgresql_or_empty(cls, url: str) -> str:
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be empty (the embedded SQLite database) or a postgresql:// URL")
        return url


class MediaSection(Section):
    # Empty: media files in the data directory's media folder. A region sets an S3 endpoint and bucket
    # (central/store/objects.py): SeaweedFS, MinIO, Ceph RGW or AWS S3.
    s3_endpoint: str = ""
    s3_bucket: str = "kuzet-media"
    s3_region: str = "us-east-1"
    # A file with two lines, the access key id and the secret key (never in central.toml itself).
    s3_credentials_file: Path = Path("s3.credentials")
    # Clips go up in parts of this size: central never holds more than one part of a clip in memory.
    multipart_chunk_mb: Annotated[int, Field(ge=5, le=512)] = 8


class MapSection(Section):
    # Tiles are optional. ``tiles``: a local tile set central serves itself (an XYZ folder, an .mbtiles or a
    # .pmtiles file; relative paths are in the data directory; docs/map.md says how to make one), for a centre
    # without internet. ``tile_url``: a tile server's URL template instead. Neither: markers on a plain grid.
    tiles: Path | None = None
    tile_url: str = ""
    tile_attribution: str = ""
    center_lat: float = 52.2873  # Pavlodar
    center_lon: float = 76.9674
    zoom: Annotated[int, Field(ge=1, le=19)] = 14

    @model_validator(mode="after")
    def _one_tile_source(self):
        if self.tiles is not None and self.tile_url:
            raise ValueError("give either tiles (local files) or tile_url (a tile server), not both")
        return self


class WorkerSection(Section):
    # Where an ingest or routing worker (``kuzet central run --role ingest|routing``) answers /healthz and
    # /metrics; a web worker answers them on [http]. 0: not at all. ``--metrics-port`` overrides it per worker.
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464
    # How often a routing standby tries for the leadership (PostgreSQL advisory lock), and how often the
    # leader reads what the ingest workers stored for it (central/inbox.py).
    leader_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    inbox_poll_s: Annotated[float, Field(gt=0, le=10)] = 0.2


class CentralConfig(Section):
    central: CentralSection = CentralSection()
    site: SiteSection = SiteSection()
    triage: TriageSection = TriageSection()
    http: HttpSection = HttpSection()
    mqtt: MqttSection = MqttSection()
    broker: BrokerSection = BrokerSection()
    storage: StorageSection = StorageSection()
    ingest: IngestSection = IngestSection()
    store: StoreSection = StoreSection()
    media: MediaSection = MediaSection()
    map: MapSection = MapSection()
    routing: RoutingSection = RoutingSection()
    watchlist: WatchlistSection = WatchlistSection()
    worker: WorkerSection = WorkerSection()

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
