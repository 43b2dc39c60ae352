"""The ``[ingest]`` section of central's configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kuzet.shared.config import Name, Section


class IngestSection(Section):
    # Client id of central's MQTT session; empty means "central-<site>". Each central process needs its own.
    client_id: str = ""
    # Subscribe as "$share/<group>/..." so several central processes split the traffic (Mosquitto; not amqtt).
    share_group: Name | None = None
    # Most messages written in one SQLite transaction, and how long the first of them may wait for others.
    batch_max: Annotated[int, Field(ge=1, le=20_000)] = 1000
    batch_window_ms: Annotated[float, Field(ge=0, le=1000)] = 20
    # Messages waiting for the writer; when full, the MQTT thread waits and the broker holds the rest.
    queue_max: Annotated[int, Field(ge=100, le=1_000_000)] = 50_000
    # How often incomplete clips are checked, and after how long without a chunk one is asked for again.
    clip_check_interval_s: Annotated[float, Field(gt=0)] = 30
    clip_stalled_after_s: Annotated[float, Field(gt=0)] = 30
    # How often retention (age and size limits of [storage]) runs.
    retention_interval_s: Annotated[float, Field(gt=0)] = 600
    # Take messages from devices that were never registered (listed as unregistered, checked against the kind
    # their heartbeat declares). Off for a site: only registered devices count. The demo and tests turn it on.
    accept_unregistered: bool = False
    # Clips being received (central/ingest/clips.py): the most one clip may claim, the most one device's clips
    # may hold at once, and the spool's share of [storage] max_media_gb (retention counts it there too).
    max_clip_mb: Annotated[float, Field(gt=0)] = 1024
    spool_per_device_mb: Annotated[float, Field(gt=0)] = 2048
    spool_share: Annotated[float, Field(gt=0, le=0.5)] = 0.1
