"""The incident lifecycle on real footage: PETS09-S2L1 through the camera's real pipeline, with the rules a
deployer would set for that view (bench/pets09_rules.toml), judged against the same rules on the ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.bench import load as load_bench

from kuzet.models import store

bench = load_bench("events")
RULES = Path(__file__).resolve().parents[2] / "bench/pets09_rules.toml"


@pytest.fixture(scope="module")
def pets(tmp_path_factory, shared_dir):
    home = tmp_path_factory.mktemp("kuzet-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("KUZET_HOME", str(home))
    store.import_model(shared_dir / "models/yolox_nano/yolox_nano_int8.tflite", "yolox_nano_int8")
    video = shared_dir / "data/pets09-s2l1/vtest.avi"
    ours = bench.pipeline_results(video)
    fps, w, h = bench.video_info(video)
    truth = bench.truth_results(shared_dir / "data/pets09-s2l1/gt.txt", fps, (w, h), len(ours))
    yield ours, truth, fps
    patch.undo()


def test_the_lifecycle_reports_fewer_duplicate_events_on_real_footage(pets):
    ours, truth, fps = pets
    rules = bench.load_rules(RULES)
    reference = bench.incidents(truth, rules)
    pairs = bench.same_people(ours, truth)
    hours = len(ours) / fps / 3600
    with_lc = bench.score(bench.incidents(ours, rules), reference, pairs, 1.0, hours)["overall"]
    without = bench.score(bench.incidents(ours, rules, lifecycle=False), reference, pairs, 1.0, hours)[
        "overall"
    ]
    assert with_lc["events"] < without["events"]
    assert with_lc["duplicates"] < without["duplicates"] / 2
    assert with_lc["duplicates"] <= 0.1
    assert with_lc["precision"] >= 0.9 and with_lc["recall"] >= 0.9


def test_a_loiterer_lost_by_the_tracker_is_one_event(pets):
    """Raw, the tracker's lost and re-found tracks make several loitering events of one stay in the square."""
    ours, _, _ = pets
    rules = bench.load_rules(RULES)
    loitering = [i for i in bench.incidents(ours, rules) if i.rule == "loitering-on-square"]
    raw = [i for i in bench.incidents(ours, rules, lifecycle=False) if i.rule == "loitering-on-square"]
    assert len(loitering) < len(raw)
    people = [frozenset(i.track_ids) for i in raw]
    assert len(people) > len(set(people))  # the same track raised more than one raw event
