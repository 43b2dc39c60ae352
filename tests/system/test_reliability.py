"""The reliability proof, shortened: a camera agent process replays real footage into central's real ingest
through a real Mosquitto; the broker is stopped and started again, then the agent is SIGKILLed mid-stream and
restarted. Every event the camera created must be stored exactly once and every clip verified.
``bench/faults.py`` runs the same scenario with a 60 s outage."""

from __future__ import annotations

import pytest
from support.bench import load as load_bench

from kuzet.models import store

run_faults = load_bench("faults").run_faults

pytestmark = [pytest.mark.slow, pytest.mark.broker]  # bench/faults.py starts its own Mosquitto


@pytest.fixture
def kuzet_home(tmp_path, shared_dir, monkeypatch):
    home = tmp_path / "kuzet-home"
    monkeypatch.setenv("KUZET_HOME", str(home))
    store.ensure(allow_download=False, progress=False)  # imported from the shared copy
    return home


def test_every_event_and_clip_arrives_exactly_once_through_outage_and_sigkill(tmp_path, kuzet_home, footage):
    figures = run_faults(
        tmp_path / "run",
        footage / "pets09-s2l1" / "vtest.avi",
        kuzet_home,
        outage_s=10,
        phase_s=8,
        settle_s=60,
    )
    # The faults bit: the camera kept making events while the broker was away and queued them; the SIGKILL hit
    # it with unacknowledged messages in its outbox.
    assert figures["created_during_outage"] > 0
    assert figures["backlog_in_outage"] > 0
    assert figures["backlog_at_kill"] > 0
    assert figures["created"] > figures["created_during_outage"] and figures["clips_created"] > 0
    # Nothing lost, nothing twice: every event stored once and closed (those the kill left open too), every
    # clip counted from its start arrives verified (one cut short by the kill is finished from its partial file)
    assert figures["stored"] == figures["created"]
    assert figures["duplicates"] == 0
    assert figures["open_in_central"] == 0
    assert figures["clips_verified"] == figures["clips_created"]
    assert figures["clips_lost"] == 0
    assert figures["clips_recovered"] >= min(figures["recording_at_kill"], 1)
    assert figures["offline_after_kill"]  # the last will told central
    # SIGTERM: a clean exit, nothing left behind, and central was told the camera is offline
    assert figures["camera_exit_code"] == 0
    assert figures["left_in_outbox"] == 0
    assert figures["online_after_stop"] is False
