"""Real-world geometry: a camera's ground plane from four points of PETS09-S2L1, whose ground truth gives each
person's position on the ground in metres (MOT columns 8-9), and running measured in km/h with it."""

from __future__ import annotations

import numpy as np
import pytest
from support.bench import load as load_bench
from support.events import Clock

from kuzet.edge.camera.config import CameraConfig
from kuzet.edge.events.config import GroundSection, RuleSection, ZoneSection
from kuzet.edge.events.engine import EventEngine

bench = load_bench("events")
WHOLE = ZoneSection(name="view", polygon=[(0, 0), (768, 0), (768, 576), (0, 576)])


@pytest.fixture(scope="module")
def pets_ground(shared_dir):
    """(feet in pixels, the same on the ground in metres) of every scored person in every frame."""
    rows = np.loadtxt(shared_dir / "data/pets09-s2l1/gt.txt", delimiter=",")
    rows = rows[rows[:, 6] == 1]
    feet = np.c_[rows[:, 2] + rows[:, 4] / 2, rows[:, 3] + rows[:, 5]]
    return feet, rows[:, 7:9]


def four_corners(feet) -> list[int]:
    """The rows a technician would pick: the four extreme spots people walked over."""
    return [
        int(i)
        for i in (
            np.argmin(feet.sum(1)),
            np.argmax(feet.sum(1)),
            np.argmin(feet[:, 0] - feet[:, 1]),
            np.argmax(feet[:, 0] - feet[:, 1]),
        )
    ]


def test_four_points_place_every_person_on_the_ground(pets_ground):
    feet, world = pets_ground
    picked = four_corners(feet)
    ground = GroundSection(image=[tuple(feet[i]) for i in picked], world=[tuple(world[i]) for i in picked])
    plane = ground.plane()
    errors = [
        np.hypot(*np.subtract(plane.to_ground(tuple(f)), w))
        for f, w in zip(feet[::25], world[::25], strict=True)
    ]
    assert np.median(errors) < 0.2 and np.percentile(errors, 95) < 0.5
    # with a fifth point, a typo (two world points swapped) is refused with the key
    five = [*picked, len(feet) // 2]
    swapped = [tuple(world[i]) for i in five]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="do not lie on one plane"):
        GroundSection(image=[tuple(feet[i]) for i in five], world=swapped)
    with pytest.raises(ValueError, match="one line"):
        GroundSection(image=[(0, 0), (1, 1), (2, 2), (3, 3)], world=[(0, 0), (1, 1), (2, 2), (3, 3)])


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "run", "type": "running", "min_speed_kmh": 12},
        {"name": "litter", "type": "littering", "min_area_m2": 0.05},
    ],
)
def test_metric_thresholds_need_the_ground(rule):
    with pytest.raises(ValueError, match=r"needs the camera's \[ground\]"):
        CameraConfig.model_validate({"device": {"id": "cam-1"}, "rules": [rule]})


def test_walkers_are_not_running_in_km_h_and_a_sprint_is(pets_ground, shared_dir):
    """PETS09's people walk: at 12 km/h no one runs; the same people sped up threefold do."""
    feet, world = pets_ground
    picked = four_corners(feet)
    ground = GroundSection(image=[tuple(feet[i]) for i in picked], world=[tuple(world[i]) for i in picked])
    fps, w, h = bench.video_info(shared_dir / "data/pets09-s2l1/vtest.avi")
    truth = bench.truth_results(shared_dir / "data/pets09-s2l1/gt.txt", fps, (w, h), 795)
    plane = ground.plane()
    speeds = [plane.speed_kmh(t.foot, t.velocity) for r in truth[::10] for t in r.tracks]
    assert 2.5 < np.median(speeds) < 7  # a walking pace
    rule = RuleSection(name="run", type="running", min_speed_kmh=12, min_duration_s=1)

    def running(results):
        engine = EventEngine("cam-1", [WHOLE], [], [rule], clock=Clock(), ground=ground)
        return [c.event for r in results for c in engine.process(r) if c.event.state == "open"]

    assert running(truth) == []
    sprint = [
        type(r)(
            r.frame,
            [type(t)(**{**t.__dict__, "velocity": (t.velocity[0] * 3, t.velocity[1] * 3)}) for t in r.tracks],
            [],
            0.0,
            0.0,
        )
        for r in truth
    ]
    events = running(sprint)
    assert events and all(e.attributes["speed_kmh"] >= 0.8 * 12 for e in events)  # 0.8: its hysteresis
