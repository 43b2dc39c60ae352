"""Motion, detector and the whole pipeline on real footage, judged against PETS09-S2L1's ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.bench import load as load_bench

from kuzet.edge.camera.config import load as load_camera_config
from kuzet.edge.vision.config import DetectorSection, MotionSection, SourceSection, TrackerSection
from kuzet.edge.vision.detector import Detector, DetectorError, decode_yolox, dequantize, quantize, yolox_grid
from kuzet.edge.vision.motion import MotionDetector
from kuzet.edge.vision.pipeline import VisionPipeline
from kuzet.edge.vision.sources import open_source
from kuzet.edge.vision.types import Detection, Frame
from kuzet.models import store

bench = load_bench("vision")
SSD = "coco_ssd_mobilenet_v1_quant"


@pytest.fixture(scope="module")
def model_home(tmp_path_factory, shared_dir):
    home = tmp_path_factory.mktemp("kuzet-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("KUZET_HOME", str(home))
    store.import_model(shared_dir / "models/coco_ssd_mobilenet_v1_quant/detect.tflite", SSD)
    store.import_model(shared_dir / "models/yolox_nano/yolox_nano_int8.tflite", "yolox_nano_int8")
    yield home
    patch.undo()


@pytest.fixture(scope="module")
def detector(model_home):
    return Detector(DetectorSection(threads=1))


def frames_of(path: Path, count: int) -> list[Frame]:
    source = open_source(SourceSection(kind="file", uri=str(path)))
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == count:
            source.close()
    return frames


@pytest.fixture(scope="module")
def vtest(shared_dir):
    return frames_of(shared_dir / "data/pets09-s2l1/vtest.avi", 120)


@pytest.fixture(scope="module")
def gt(shared_dir):
    return bench.load_mot(shared_dir / "data/pets09-s2l1/gt.txt")


@pytest.fixture(scope="module")
def ssd(model_home):
    return Detector(DetectorSection(model=SSD, threads=1))


def test_the_default_detector_is_yolox(detector):
    assert detector.model.name == "yolox_nano_int8" and detector.decoder == "yolox"
    assert (detector.input_w, detector.input_h) == (416, 416)


def test_detector_finds_the_people_and_the_bus(detector, footage):
    image = cv2.imread(str(footage / "street/bus.jpg"))
    found = detector.detect(image, min_score=0.3)
    people = [d for d in found if d.label == "person" and d.score >= 0.5]
    assert len(people) >= 3
    # INT8 costs the big bus confidence (0.43 here; the fp32 ONNX gives 0.91): it is found above 0.3.
    assert any(d.label == "bus" and d.box[2] > image.shape[1] * 0.8 for d in found)
    assert all(d.box[0] >= 0 and d.box[0] + d.box[2] <= image.shape[1] + 1 for d in found)
    # A window maps back to frame pixels: the leftmost person, found inside a crop around them.
    left = min(people, key=lambda d: d.box[0])
    x, y, w, h = (int(v) for v in left.box)
    window = (max(0, x - 100), max(0, y - 50), w + 200, h + 100)
    again = [d for d in detector.detect(image, window) if d.label == "person"]
    assert any(abs(d.box[0] - left.box[0]) < 25 and abs(d.box[1] - left.box[1]) < 25 for d in again)
    assert detector.model.sha256 == store.entry().sha256


def test_the_default_config_finds_the_bus_at_its_vehicle_threshold(detector, footage):
    # The manifest's label_thresholds: vehicles at 0.3 (INT8 lost confidence on large objects), persons at 0.5.
    assert detector.threshold("bus") == 0.3 and detector.threshold("person") == 0.5
    assert detector.threshold_offsets()["truck"] == pytest.approx(0.2)
    image = cv2.imread(str(footage / "street/bus.jpg"))
    found = detector.detect(image)
    assert any(d.label == "bus" and d.box[2] > image.shape[1] * 0.8 for d in found)
    assert all(d.score >= 0.5 for d in found if d.label == "person")
    assert all(d.score >= 0.3 for d in found)


def test_a_camera_may_set_its_own_label_thresholds(model_home, footage):
    image = cv2.imread(str(footage / "street/bus.jpg"))
    plain = Detector(DetectorSection(threads=1, label_thresholds={}))
    assert plain.threshold("bus") == 0.5
    assert all(d.score >= 0.5 for d in plain.detect(image))


def test_the_ssd_keeps_one_threshold_for_every_label(ssd):
    assert ssd.label_thresholds == {} and ssd.threshold("bus") == ssd.section.score_threshold


def test_the_ssd_still_finds_the_people_and_the_bus(ssd, footage):
    image = cv2.imread(str(footage / "street/bus.jpg"))
    found = ssd.detect(image)
    assert ssd.decoder == "ssd_postprocess"
    assert len([d for d in found if d.label == "person"]) >= 3
    assert any(d.label == "bus" and d.box[2] > image.shape[1] / 2 for d in found)


def test_yolox_finds_pets_people_near_the_ground_truth(detector, vtest, gt):
    found = truth_total = false = detections = 0
    scored, ignored = gt
    for frame in vtest[::20]:
        truth = [b for _, b in scored.get(frame.index + 1, [])]
        anyone = np.array(truth + ignored.get(frame.index + 1, [])).reshape(-1, 4)
        people = np.array([d.box for d in detector.detect(frame.image) if d.label == "person"]).reshape(-1, 4)
        overlap = bench.iou_matrix(np.array(truth).reshape(-1, 4), people)
        found += int((overlap.max(axis=1, initial=0) >= 0.5).sum())
        truth_total += len(truth)
        false += int((bench.iou_matrix(people, anyone).max(axis=1, initial=0) < 0.5).sum())
        detections += len(people)
    # The whole frame at 0.54 scale, one inference, score 0.5: measured recall 0.77, precision 0.73 on these
    # 6 frames (boxes within IoU 0.5 of the annotated ones); the pipeline's native windows do better.
    assert found / truth_total >= 0.7
    assert 1 - false / detections >= 0.65


def test_a_camera_configured_for_the_ssd_keeps_working(model_home, tmp_path, footage):
    path = tmp_path / "camera.toml"
    path.write_text(f'[device]\nid = "cam-ssd"\n[detector]\nmodel = "{SSD}"\n')
    config = load_camera_config(path)
    pipeline = VisionPipeline.from_config(config.motion, config.detector, config.tracker)
    assert pipeline.model_info == (SSD, store.entry(SSD).sha256)
    found = pipeline.detector.detect(cv2.imread(str(footage / "street/bus.jpg")))
    assert len([d for d in found if d.label == "person"]) >= 3


def test_yolox_decoding_by_hand():
    """One cell per stride, decoded exactly as the model's layout says; per-class NMS; only kept classes."""
    grid, stride = yolox_grid(416, 416, 3549)
    raw = np.zeros((3549, 85), np.float32)
    raw[:, 2:4] = -5.0  # tiny boxes everywhere, objectness 0
    cell = 52 * 10 + 20  # stride 8, row 10, col 20
    raw[cell, :5] = [0.5, 0.5, np.log(4.0), np.log(8.0), 0.9]
    raw[cell, 5] = 0.8  # person
    twin = cell + 1  # the same person one cell right: suppressed by NMS
    raw[twin, :5] = [-0.5, 0.5, np.log(4.0), np.log(8.0), 0.8]
    raw[twin, 5] = 0.8
    big = 52 * 52 + 26 * 26 + 13 * 6 + 6  # stride 32, row 6, col 6
    raw[big, :5] = [0.0, 0.0, np.log(5.0), np.log(3.0), 0.95]
    raw[big, 5 + 5] = 0.9  # bus
    raw[big, 5 + 26] = 0.99  # handbag: not kept, must not hide the bus
    boxes, scores, classes = decode_yolox(raw, grid, stride, np.array([0, 5]), 0.3, 0.45)
    order = np.argsort(classes)
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    assert classes.tolist() == [0, 5]
    np.testing.assert_allclose(scores, [0.72, 0.855], rtol=1e-5)
    np.testing.assert_allclose(boxes[0], [(20.5 * 8) - 16, (10.5 * 8) - 32, 32, 64], rtol=1e-5)
    np.testing.assert_allclose(boxes[1], [6 * 32 - 80, 6 * 32 - 48, 160, 96], rtol=1e-5)
    assert decode_yolox(raw, grid, stride, np.array([0, 5]), 0.9, 0.45)[0].shape == (0, 4)


def test_quantized_input_and_output_tensors():
    detail = {"dtype": np.int8, "quantization": (1.0, -114)}
    q = quantize(np.array([0.0, 114.0, 255.0, 300.0], np.float32), detail)
    assert q.dtype == np.int8 and q.tolist() == [-114, 0, 127, 127]
    detail = {"dtype": np.uint8, "quantization": (0.5, 10)}
    assert dequantize(np.array([10, 12], np.uint8), detail).tolist() == [0.0, 1.0]
    assert quantize(np.ones(2, np.float64), {"dtype": np.float32}).dtype == np.float32


def test_edgetpu_asked_for_but_absent_is_a_clear_error(model_home):
    with pytest.raises(DetectorError, match="no Coral EdgeTPU is usable"):
        Detector(DetectorSection(backend="edgetpu"))


def test_a_model_path_needs_labels(tmp_path, model_home):
    with pytest.raises(DetectorError, match="labels_path"):
        Detector(DetectorSection(model=str(store.resolve())))


def gt_centres(gt, index):
    scored, _ignored = gt
    return [(x + w / 2, y + h / 2) for _, (x, y, w, h) in scored.get(index + 1, [])]


def test_motion_finds_walking_people_and_respects_masks(vtest, gt):
    motion = MotionDetector(MotionSection())
    covered = total = 0
    for frame in vtest[:60]:
        result = motion(frame.image)
        if frame.index < 20:
            continue  # the background model is still learning
        for cx, cy in gt_centres(gt, frame.index):
            total += 1
            covered += any(x <= cx < x + w and y <= cy < y + h for x, y, w, h in result.regions)
    assert covered / total > 0.8

    left_half = [[(0, 0), (384, 0), (384, 576), (0, 576)]]
    masked = MotionDetector(MotionSection(masks=left_half))
    for frame in vtest[:60]:
        result = masked(frame.image)
    assert result.regions and all(x + w > 384 for x, y, w, h in result.regions)


def test_a_sudden_light_change_is_not_motion(vtest):
    motion = MotionDetector(MotionSection())
    for frame in vtest[:30]:
        motion(frame.image)
    brighter = cv2.convertScaleAbs(vtest[30].image, alpha=1.0, beta=70)
    result = motion(brighter)
    assert result.share > 0.5 and result.regions == []


def test_leaves_move_but_never_become_people(model_home, footage):
    frames = frames_of(footage / "motion/tree.avi", 1000)
    pipeline = VisionPipeline.from_config()
    moved = 0.0
    for frame in frames:
        result = pipeline.process(frame)
        moved = max(moved, result.motion_share)
        assert [t for t in result.tracks if t.label == "person"] == []
    assert moved > 0.01  # there was motion to resist


def test_pipeline_tracks_pets_people(model_home, vtest, gt):
    pipeline = VisionPipeline.from_config()
    assert pipeline.model_info == ("yolox_nano_int8", store.entry().sha256)
    result = {}
    for frame in vtest:
        out = pipeline.process(frame)
        result[frame.index] = [(t.track_id, t.box) for t in out.tracks if t.label == "person"]
    figures = bench.score(result, gt, len(vtest))
    assert figures["recall"] >= 0.7  # measured 0.76 on these 120 frames
    assert figures["precision"] >= 0.75  # measured 0.83 (unannotated far people count as false)
    ids = {i for tracks in result.values() for i, _ in tracks}
    assert len(ids) < 3 * max(len(g) for g in gt[0].values())  # ids are not churned


def test_disabled_pipeline_returns_nothing_cheaply(model_home, vtest):
    pipeline = VisionPipeline.from_config()
    pipeline.enabled = False
    result = pipeline.process(vtest[0])
    assert result.tracks == [] and result.detections == [] and result.detector_ms == 0.0
    pipeline.enabled = True
    assert pipeline.process(vtest[0]).detector_ms > 0


def test_tracks_report_velocity_in_pixels_per_second(model_home, vtest):
    pipeline = VisionPipeline.from_config(tracker=TrackerSection(history=8))
    for frame in vtest[:60]:
        tracks = pipeline.process(frame).tracks
    assert tracks
    assert all(len(t.history) <= 8 for t in tracks)
    speeds = [np.hypot(*t.velocity) for t in tracks]
    # People walk at roughly 5-150 px/s in this footage (10 fps, 768x576); not per-frame units.
    assert max(speeds) > 5 and max(speeds) < 400


def test_the_bench_drops_hypotheses_on_people_the_annotators_ignored():
    person, ignored = (100, 100, 30, 80), (300, 100, 30, 80)
    on_person, on_ignored, elsewhere = (
        (1, (102, 101, 30, 80)),
        (2, (301, 99, 30, 80)),
        (3, (500, 300, 30, 80)),
    )
    kept = bench.drop_ignored([(7, person)], [on_person, on_ignored, elsewhere], [ignored])
    assert kept == [on_person, elsewhere]  # a false positive elsewhere still counts against precision
    # An ignored person overlapping the scored one: the hypothesis goes to whom it fits best, and stays.
    beside = (106, 100, 30, 80)
    assert bench.drop_ignored([(7, person)], [on_person], [beside]) == [on_person]
    scored, skipped = {1: [(7, person)]}, {1: [ignored]}
    figures = bench.score({0: [on_person, on_ignored]}, (scored, skipped), 1)
    assert figures["precision"] == 1.0 and figures["recall"] == 1.0


def test_windows_revisit_an_area_only_after_the_configured_frames():
    from kuzet.edge.vision.windows import WindowPlanner

    planner = WindowPlanner(416, budget=1, revisit=2)
    person = (100.0, 100.0, 20.0, 50.0)
    first = planner.plan([person], 768, 576)
    assert len(first) == 1 and first[0][2] == 416
    planner.mark(first)
    assert planner.plan([person], 768, 576) == []  # searched last frame: the tracker carries it this one
    assert planner.plan([person], 768, 576) == first  # two frames on: looked at again
    every = WindowPlanner(416, budget=1)
    every.mark(every.plan([person], 768, 576))
    assert every.plan([person], 768, 576)


def test_only_objects_too_small_for_the_whole_frame_get_windows(model_home, vtest):
    """768x576 into 416: scale 0.54, so with small_object_px 50 only regions under ~92 px tall get windows."""
    pipeline = VisionPipeline.from_config()
    seen = []
    original = pipeline.planner.plan
    pipeline.planner.plan = lambda regions, w, h: seen.append(list(regions)) or original(regions, w, h)
    for frame in vtest[:40]:
        pipeline.process(frame)
    assert any(seen) and all(r[3] * 416 / 768 < 50 for regions in seen for r in regions)


def test_the_whole_frame_is_weak_evidence_for_objects_tracked_as_small(model_home, vtest):
    """A small tracked person is followed in native windows; the coarse view of them only bridges (second stage)."""
    pipeline = VisionPipeline.from_config()
    weak_score = pipeline.tracker.section.high_score - 1e-3
    for frame in vtest[:30]:
        result = pipeline.process(frame)
        assert all(d.score != weak_score for d in result.detections)  # reported with the detector's own score
    small = pipeline.detector_section.small_object_px * 768 / 416
    tracked = [t for t in pipeline.tracker.tracks if t.confirmed and t.box[3] < small]
    assert tracked
    box = tracked[0].box
    high = pipeline.tracker.section.high_score
    on_it = Detection(box, 0.9, "person")
    elsewhere = Detection((700.0, 400.0, box[2], box[3]), 0.9, "person")
    big = Detection((box[0], box[1], box[2] * 2, small + 10), 0.9, "person")
    weak = pipeline._weak_if_small_tracked([on_it, elsewhere, big], small)
    assert weak[0].score < high and weak[0].box == box
    assert weak[1].score == 0.9 and weak[2].score == 0.9  # may start a track / big: the whole frame sees it
