"""The offence rules on real footage. No public clip shows littering or a fall on this view, so the clips are
made of real pictures: PETS09-S2L1 (vtest.avi) with a real object cut from another video (the taxi sign in
bikes.mp4) appearing at a real passer-by's feet and staying; a real walker's own picture, cut from the frame
where they are, turned on its side and left lying where they were while the real person is painted out with
the empty square (the median of the footage). Both go through the camera's real pipeline (YOLOX, tracker) and
the rules. The swaying tree (tree.avi) and the whole of vtest.avi's crowd raise none of them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.bench import load as load_bench
from support.events import Clock

from kuzet.edge.events.config import RuleSection, ZoneSection
from kuzet.edge.events.engine import EventEngine
from kuzet.edge.vision.config import DetectorSection
from kuzet.edge.vision.pipeline import VisionPipeline
from kuzet.edge.vision.static import StaticForeground
from kuzet.edge.vision.types import Frame
from kuzet.models import store

bench = load_bench("events")
FPS = 10.0  # vtest.avi's own rate
VIEW = ZoneSection(name="view", polygon=[(0, 0), (768, 0), (768, 576), (0, 576)])
LITTER = RuleSection(name="litter", type="littering", zone="view", stationary_s=5)
DOWN = RuleSection(name="down", type="person_down", zone="view", down_s=4)
CHASE = RuleSection(name="chase", type="chase", zone="view", min_duration_s=0.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory, shared_dir):
    home = tmp_path_factory.mktemp("kuzet-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("KUZET_HOME", str(home))
    store.import_model(shared_dir / "models/yolox_nano/yolox_nano_int8.tflite", "yolox_nano_int8")
    yield
    patch.undo()


def read(video: Path, first: int = 0, last: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    images = []
    while last is None or first + len(images) < last:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    return images


def stream(video: Path):
    """Frame by frame, for footage too long to hold in memory at once."""
    cap = cv2.VideoCapture(str(video))
    ok, image = cap.read()
    while ok:
        yield image
        ok, image = cap.read()
    cap.release()


def ground_truth(shared_dir: Path) -> dict[int, dict[int, tuple[int, int, int, int]]]:
    """{video frame (0-based): {gt person: box}}."""
    boxes: dict[int, dict] = defaultdict(dict)
    for line in (shared_dir / "data/pets09-s2l1/gt.txt").read_text().splitlines():
        f, pid, x, y, w, h = (round(float(v)) for v in line.split(",")[:6])
        boxes[f - 1][pid] = (x, y, w, h)
    return boxes


def events(images, rules: list[RuleSection], fps: float = FPS) -> list:
    """Every event message the camera's pipeline and these rules raise on the frames."""
    pipeline = VisionPipeline.from_config(detector=DetectorSection(threads=1))
    engine = EventEngine("cam-1", [VIEW], [], rules, clock=Clock())
    changes = []
    for k, image in enumerate(images):
        changes += engine.process(pipeline.process(Frame(image, k, k / fps)))
    return changes


def opened(changes: list, rule: str) -> list:
    return [c for c in changes if c.event.state == "open" and c.event.attributes["rule"] == rule]


def taxi_sign(shared_dir: Path, size: tuple[int, int]) -> np.ndarray:
    """A real object from another video: the white and red roof sign of a taxi in bikes.mp4, frame 60."""
    image = read(shared_dir / "data/street/bikes.mp4", 60, 61)[0]
    return cv2.resize(image[95:150, 0:110], size, interpolation=cv2.INTER_AREA)


def litter_clip(shared_dir: Path, first: int, last: int, person: int, dropped: int) -> tuple[list, tuple]:
    """vtest.avi frames first..last with the taxi sign appearing at gt ``person``'s feet at frame ``dropped``
    and staying; people walking over it hide it (drawn under every gt person's box). Returns the frames and
    where the object lies."""
    images = read(shared_dir / "data/pets09-s2l1/vtest.avi", first, last)
    truth = ground_truth(shared_dir)
    x, y, w, h = truth[dropped][person]
    sign = taxi_sign(shared_dir, (28, 14))
    box = (x + w // 2 - 14, y + h - 10, 28, 14)  # on the ground beside the feet
    for k, image in enumerate(images, start=first):
        if k < dropped:
            continue
        ox, oy, ow, oh = box
        shown = np.ones((oh, ow), bool)
        for px, py, pw, ph in truth[k].values():  # behind whoever walks past
            shown[max(0, py - oy) : max(0, py + ph - oy), max(0, px - ox) : max(0, px + pw - ox)] = False
        region = image[oy : oy + oh, ox : ox + ow]
        region[shown] = sign[shown]
    return images, box


def empty_square(shared_dir: Path) -> np.ndarray:
    """PETS09-S2L1 with no one in it: the median of frames spread over the footage (people move on)."""
    images = [
        image for k, image in enumerate(stream(shared_dir / "data/pets09-s2l1/vtest.avi")) if k % 20 == 0
    ]
    return np.median(np.stack(images), axis=0).astype(np.uint8)


def fall_clip(shared_dir: Path, first: int, last: int, person: int, falls: int) -> tuple[list, tuple]:
    """vtest.avi frames first..last where gt ``person`` falls at frame ``falls``: from then on their picture
    cut from that frame lies on its side where they stood, and the real person walking on is painted out.
    Returns the frames and the lying box."""
    images = read(shared_dir / "data/pets09-s2l1/vtest.avi", first, last)
    truth = ground_truth(shared_dir)
    empty = empty_square(shared_dir)
    x, y, w, h = truth[falls][person]
    body = cv2.rotate(images[falls - first][y : y + h, x : x + w].copy(), cv2.ROTATE_90_CLOCKWISE)
    lying = (x + w // 2 - h // 2, y + h - w, h, w)  # head to the right, on the ground where the feet were
    for k, image in enumerate(images, start=first):
        if k < falls:
            continue
        px, py, pw, ph = truth[k][person]
        image[py : py + ph, px : px + pw] = empty[py : py + ph, px : px + pw]
        lx, ly, lw, lh = lying
        image[ly : ly + lh, lx : lx + lw] = body
    return images, lying


def iou(a, b) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def as_tuple(box) -> tuple[float, float, float, float]:
    return (box.x, box.y, box.w, box.h)


def test_litter_dropped_by_a_passer_by_is_raised_with_who_dropped_it(models, shared_dir):
    """gt person 16 walks west across the square; at frame 150 a packet lies at their feet and stays (person 17
    walks past it 2 s later). One littering event, naming 16's track, with a snapshot of 16 at the spot."""
    images, packet = litter_clip(shared_dir, 100, 260, person=16, dropped=150)
    changes = events(images, [LITTER])
    [change] = opened(changes, "litter")
    event = change.event
    assert event.event_type == "object_left" and event.label == "object"
    assert iou(as_tuple(event.box), packet) > 0.3
    assert event.track_ids == [event.attributes["owner_track"]]
    assert event.started_at >= Clock().now  # raised once it stayed stationary_s, not before it was dropped
    # the snapshot: the frame where the owner stood at the spot, the owner's box on gt person 16 there
    assert change.snapshot is not None and 45 <= change.snapshot.index <= 55
    owner_box = dict((label, box) for box, label in change.boxes)["person"]
    assert iou(owner_box, ground_truth(shared_dir)[100 + change.snapshot.index][16]) >= 0.5
    # the same frames without the packet: nothing
    clean = read(shared_dir / "data/pets09-s2l1/vtest.avi", 100, 260)
    assert opened(events(clean, [LITTER]), "litter") == []


def test_a_person_who_falls_and_lies_still_is_raised(models, shared_dir):
    """gt person 4 walks across the lawn near the camera and, at frame 626, lies down where they stood; the
    tracker keeps their track through the fall. One person-down event on them once they lay still down_s."""
    images, lying = fall_clip(shared_dir, 586, 726, person=4, falls=626)
    changes = events(images, [DOWN])
    [change] = opened(changes, "down")
    event = change.event
    assert event.event_type == "person_down"
    assert event.severity == "high"
    assert iou(as_tuple(event.box), lying) >= 0.5
    assert change.frame.index >= 40 + DOWN.down_s * FPS  # not before they lay still down_s
    # the real footage, where they walk on: nothing
    walking = read(shared_dir / "data/pets09-s2l1/vtest.avi", 586, 726)
    assert opened(events(walking, [DOWN]), "down") == []


def test_the_static_model_tells_what_came_from_what_went(shared_dir):
    """On the empty square (real pixels, no detector): a packet put down is reported once it stayed, growing
    in how long it stayed; one that was there from the start and is picked up is a ghost, "removed"."""
    empty = empty_square(shared_dir)
    with_packet = empty.copy()
    with_packet[400:414, 300:328] = taxi_sign(shared_dir, (28, 14))

    def regions(images, fps=10.0):
        model = StaticForeground()
        return [model.feed(Frame(image, k, k / fps)) for k, image in enumerate(images)]

    came = regions([empty] * 20 + [with_packet] * 100)  # put down at 2 s, 10 s there
    assert came[20] == [] and came[25] == []  # not before it has stayed a moment
    assert came[60][0].static_s < came[-1][0].static_s
    [packet] = came[-1]
    assert packet.removed is False and 6 <= packet.static_s <= 10
    assert iou(packet.box, (300, 400, 28, 14)) >= 0.3  # where it lies (its parts unlike the ground)
    went = regions([with_packet] * 20 + [empty] * 100)  # picked up at 2 s
    assert [r.removed for r in went[-1]] == [True]
    # a still scene has nothing, and a change of light over the whole frame is not an object
    brighter = cv2.convertScaleAbs(empty, alpha=1.0, beta=40)
    assert regions([empty] * 20 + [brighter] * 100)[-1] == []


def test_leaves_in_the_wind_and_the_crowd_raise_no_litter_fall_or_chase(models, shared_dir):
    """tree.avi played forth and back (18 s of leaves swaying, a hand coming in) and the whole of vtest.avi
    (80 s of people walking, standing in groups, crossing each other)."""
    tree = read(shared_dir / "data/motion/tree.avi")
    swaying = tree + tree[::-1] + tree + tree[::-1]
    assert events(swaying, [LITTER, DOWN, CHASE], fps=15.0) == []
    assert events(stream(shared_dir / "data/pets09-s2l1/vtest.avi"), [LITTER, DOWN, CHASE]) == []
