"""Helpers shared by the ingest and retention tests: a Central on a temporary directory, messages, waiting."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from kuzet.central.config import CentralConfig
from kuzet.central.context import Central
from kuzet.shared import ids, messages, timeutil, topics

SITE = "pavlodar"
REPO = Path(__file__).resolve().parents[2]


def make_central(tmp_path, broker_url: str | list[str] = "mqtt://127.0.0.1:1", **sections) -> Central:
    """Devices need not be registered (``[ingest] accept_unregistered``) unless ``ingest`` says otherwise.
    ``broker_url``: one broker, or the list of ``[mqtt] brokers``."""
    sections["ingest"] = {"accept_unregistered": True, **sections.get("ingest", {})}
    brokers = [broker_url] if isinstance(broker_url, str) else broker_url
    config = CentralConfig.model_validate({"mqtt": {"brokers": brokers}, **sections})
    return Central(config=config, data_dir=tmp_path / "central")


def event(device: str, event_id: str, seq: int, state: str = "open", **fields) -> messages.Event:
    started = timeutil.utc_now() - timedelta(seconds=10)
    values = dict(
        device=device,
        event_id=event_id,
        seq=seq,
        state=state,
        event_type="loitering",
        severity="high",
        label="person",
        score=0.5 + seq / 100,
        started_at=started,
        ended_at=timeutil.utc_now() if state == "closed" else None,
        track_ids=[seq],
        box=messages.Box(x=10, y=20, w=30, h=60 + seq),
    )
    values.update(fields)
    return messages.Event(**values)


def up(device: str, kind: str) -> str:
    return topics.up(SITE, device, kind)


def new_id() -> str:
    return ids.new_id()


def wait_for(condition, timeout_s: float = 15.0, what: str = "condition"):
    """Poll until ``condition()`` is truthy (returning it); fail the test if it never becomes so."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def dead_letter_rows(central) -> list[dict]:
    """Every dead letter, oldest first."""
    return [dict(row) for row in central.db().query("SELECT * FROM dead_letters ORDER BY id")]
