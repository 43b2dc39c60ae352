"""The reliability proof, shortened: a camera agent process replays real footage into central's real ingest
through a real Mosquitto; the broker is stopped and started again, then the agent is SIGKILLed mid-stream and
restarted. Every event the camera created must be stored exactly once and every clip verified.
``bench/faults.py`` runs the same scenario with a 60 s outage."""

from __future__ import annotations

import pytest

from bench.faults import run_faults
from models import store

pytestmark = pytest.mark.slow


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
        outage_s=6,
        phase_s=8,
        settle_s=60,
    )
    assert figures["created"] > 0 and figures["clips_created"] > 0  # the scenario really produced work
    assert figures["stored"] == figures["created"]
    assert figures["duplicates"] == 0
    assert figures["clips_verified"] == figures["clips_created"]
    assert figures["offline_after_kill"]  # the last will told central
    # SIGTERM: a clean exit, nothing left behind, and central was told the camera is offline
    assert figures["camera_exit_code"] == 0
    assert figures["left_in_outbox"] == 0
    assert figures["online_after_stop"] is False
