"""Benchmark the camera's vision pipeline against MOT ground truth, with a whole-frame baseline in the same run.

    python bench/vision.py --video ../shared/data/pets09-s2l1/vtest.avi --gt ../shared/data/pets09-s2l1/gt.txt --json

Prints one JSON object: frames, recall, precision, mota, idf1, id_switches, ms_per_frame (mean CPU ms per frame
of the pipeline, one detector thread) and ``baseline_full_frame`` with the same keys: the same model on the whole
frame resized, every frame, through the same tracker; ``baseline_ssd``: the former default detector (COCO SSD
MobileNet v1) through the pipeline with the settings it was tuned with. Persons only, IoU 0.5 (py-motmetrics).
Without --gt it reports tracks per frame instead of accuracy. Frame k of the video (0-based) is frame k+1 of the
MOT file. ``vehicles``: car/bus/truck detection, SSD against the default model, on the labelled street stills
(LabelMe polygons and boxes in ``--street``, default ../street beside the video's folder), recall and precision
at IoU 0.5 over the whole image.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kuzet.edge.vision.config import DetectorSection, MotionSection, SourceSection, TrackerSection  # noqa: E402
from kuzet.edge.vision.detector import Detector  # noqa: E402
from kuzet.edge.vision.pipeline import VisionPipeline  # noqa: E402
from kuzet.edge.vision.sources import open_source  # noqa: E402
from kuzet.edge.vision.tracker import Tracker, iou_matrix  # noqa: E402
from kuzet.models import store  # noqa: E402

PERSON = "person"
SSD = "coco_ssd_mobilenet_v1_quant"
# The pipeline as it was tuned for the SSD (300 px input) before YOLOX became the default.
SSD_SETTINGS = {
    "window": 300,
    "max_window": 420,
    "max_windows": 2,
    "full_frame_interval": 10,
    "small_object_px": 0,  # every motion region and track may get a window
    "window_revisit": 1,
    "score_threshold": 0.5,
}
SSD_TRACKER = {"high_score": 0.6, "low_score": 0.3}
VEHICLES = ("car", "bus", "truck")
LABELME_ALIASES = {"track": "truck"}  # labelme_street spells the truck "track"


def load_labelme(path: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(label, x, y, w, h box) for every vehicle shape of a LabelMe JSON: polygons become their bounding boxes."""
    import numpy as np

    shapes = json.loads(path.read_text())["shapes"]
    out = []
    for shape in shapes:
        label = LABELME_ALIASES.get(shape["label"], shape["label"])
        if label not in VEHICLES:
            continue
        pts = np.array(shape["points"], float)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        out.append((label, (float(x0), float(y0), float(x1 - x0), float(y1 - y0))))
    return out


def vehicle_figures(
    detector: Detector, street: Path, min_iou: float = 0.5, min_score: float | None = None
) -> dict:
    """Car/bus/truck on the labelled stills, whole image, one inference each: a vehicle is found when a vehicle
    detection overlaps it by min_iou (class_recall also needs the right class); precision counts detections."""
    import cv2
    import numpy as np

    pairs = sorted((street / "labelme_street").glob("*.json")) + sorted(street.glob("*.json"))
    truth_n = found = found_class = hyp_n = true_hyp = 0
    for label_file in pairs:
        image = cv2.imread(str(label_file.with_suffix(".jpg")))
        if image is None:
            continue
        truth = load_labelme(label_file)
        hyp = [d for d in detector.detect(image, None, min_score) if d.label in VEHICLES]
        overlap = iou_matrix(
            np.array([b for _, b in truth]).reshape(-1, 4), np.array([d.box for d in hyp]).reshape(-1, 4)
        )
        hit = overlap >= min_iou
        same = np.array([[t == d.label for d in hyp] for t, _ in truth], bool).reshape(hit.shape)
        truth_n += len(truth)
        hyp_n += len(hyp)
        found += int(hit.any(axis=1).sum())
        found_class += int((hit & same).any(axis=1).sum())
        true_hyp += int(hit.any(axis=0).sum())
    return {
        "images": len(pairs),
        "vehicles": truth_n,
        "recall": round(found / max(truth_n, 1), 3),
        "class_recall": round(found_class / max(truth_n, 1), 3),
        "precision": round(true_hyp / max(hyp_n, 1), 3),
        "detections": hyp_n,
        "min_score": min_score
        if min_score is not None
        else {"default": detector.section.score_threshold, **detector.label_thresholds},
    }


def load_mot(path: Path) -> tuple[dict[int, list], dict[int, list]]:
    """MOT ground truth: (1-based frame -> [(id, (x, y, w, h))] to be found, frame -> [box] to be ignored).

    The 7th column is MOTChallenge's "consider" flag: 0 marks a person the annotators chose not to score (in
    PETS09-S2L1, two people standing far off by the van, and one at the top-left edge). MOTChallenge's evaluation
    neither counts them as missed nor counts a hypothesis on them as a false positive; neither does this bench.
    """
    frames, ignored = defaultdict(list), defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        parts = line.split(",")
        frame, obj = int(float(parts[0])), int(float(parts[1]))
        box = tuple(float(v) for v in parts[2:6])
        if len(parts) > 6 and float(parts[6]) == 0:
            ignored[frame].append(box)
        else:
            frames[frame].append((obj, box))
    return frames, ignored


def drop_ignored(truth: list, hyp: list, ignored: list, min_iou: float = 0.5) -> list:
    """The hypotheses left once those on ignored people are taken out, as MOTChallenge's devkit does: every
    person (scored or not) is matched to at most one hypothesis (Hungarian on IoU >= min_iou), and the
    hypotheses matched to ignored people are dropped."""
    if not ignored or not hyp:
        return hyp
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    people = np.array([b for _, b in truth] + list(ignored)).reshape(-1, 4)
    overlap = iou_matrix(people, np.array([b for _, b in hyp]).reshape(-1, 4))
    cost = np.where(overlap >= min_iou, 1.0 - overlap, 1e6)
    rows, cols = linear_sum_assignment(cost)
    dropped = {c for r, c in zip(rows, cols, strict=True) if r >= len(truth) and cost[r, c] < 1e6}
    return [h for j, h in enumerate(hyp) if j not in dropped]


class FullFrameBaseline:
    """The same model on the whole frame resized, every frame, through the same tracker."""

    def __init__(self, detector: Detector, tracker: TrackerSection, min_score: float):
        self.detector = detector
        self.tracker = Tracker(tracker)
        self.min_score = min_score

    def process(self, frame):
        detections = self.detector.detect(frame.image, None, self.min_score)
        h, w = frame.image.shape[:2]
        return self.tracker.update(detections, frame.ts, frame_size=(w, h))


def run(pipeline, video: Path, max_frames: int | None, tracks_of) -> tuple[dict[int, list], float, int]:
    """(0-based frame -> person tracks [(id, box)], CPU ms per frame, frames)."""
    source = open_source(SourceSection(kind="file", uri=str(video)))
    out: dict[int, list] = {}
    cpu = 0.0
    frames = 0
    for frame in source:
        if max_frames is not None and frames >= max_frames:
            break
        started = time.process_time()
        tracks = tracks_of(pipeline.process(frame))
        cpu += time.process_time() - started
        out[frame.index] = [(t.track_id, t.box) for t in tracks if t.label == PERSON]
        frames += 1
    source.close()
    return out, 1000 * cpu / max(frames, 1), frames


def score(result: dict[int, list], gt, frames: int) -> dict:
    import motmetrics as mm
    import numpy as np

    scored, ignored = gt
    acc = mm.MOTAccumulator(auto_id=True)
    for k in range(frames):
        truth = scored.get(k + 1, [])
        hyp = drop_ignored(truth, result.get(k, []), ignored.get(k + 1, []))
        # motmetrics 1.4's own iou_matrix uses np.asfarray, gone in numpy 2: same distance, computed here.
        overlap = iou_matrix(
            np.array([b for _, b in truth]).reshape(-1, 4), np.array([b for _, b in hyp]).reshape(-1, 4)
        )
        distances = np.where(overlap >= 0.5, 1.0 - overlap, np.nan)
        acc.update([i for i, _ in truth], [i for i, _ in hyp], distances)
    summary = mm.metrics.create().compute(
        acc, metrics=["recall", "precision", "mota", "idf1", "num_switches"], name="run"
    )
    row = summary.loc["run"]
    return {
        "recall": round(float(row["recall"]), 4),
        "precision": round(float(row["precision"]), 4),
        "mota": round(float(row["mota"]), 4),
        "idf1": round(float(row["idf1"]), 4),
        "id_switches": int(row["num_switches"]),
    }


def describe_tracks(result: dict[int, list], frames: int) -> dict:
    ids = {i for tracks in result.values() for i, _ in tracks}
    counts = [len(result.get(k, [])) for k in range(frames)]
    return {
        "person_tracks": len(ids),
        "tracks_per_frame": round(sum(counts) / max(frames, 1), 3),
        "max_tracks_in_a_frame": max(counts, default=0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--gt", type=Path, help="MOT-format ground truth (omit: report tracks per frame)")
    parser.add_argument("--frames", type=int, help="only the first N frames")
    parser.add_argument("--model", default=DetectorSection().model)
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the whole-frame and SSD baseline runs"
    )
    parser.add_argument(
        "--street", type=Path, help="labelled street stills (default: ../street beside the video's folder)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (the default prints it indented)"
    )
    args = parser.parse_args(argv)

    detector_section = DetectorSection(model=args.model, threads=1)
    tracker_section = TrackerSection()
    detector = Detector(detector_section)
    gt = load_mot(args.gt) if args.gt else None

    def evaluate(pipeline, tracks_of) -> dict:
        result, ms, frames = run(pipeline, args.video, args.frames, tracks_of)
        figures = {"frames": frames}
        figures |= score(result, gt, frames) if gt is not None else describe_tracks(result, frames)
        figures["ms_per_frame"] = round(ms, 2)
        return figures

    pipeline = VisionPipeline(MotionSection(), detector, detector_section, tracker_section)
    report = evaluate(pipeline, lambda r: r.tracks)
    report["model"] = detector.model.name
    if not args.no_baseline:
        min_score = min(detector_section.score_threshold, tracker_section.low_score)
        baseline = FullFrameBaseline(detector, tracker_section, min_score)
        report["baseline_full_frame"] = evaluate(baseline, lambda tracks: tracks)
        report["ms_ratio_to_baseline"] = round(
            report["ms_per_frame"] / max(report["baseline_full_frame"]["ms_per_frame"], 1e-9), 3
        )
        if args.model != SSD:
            store.ensure(
                SSD, progress=False
            )  # imported from ../shared, or downloaded from its public address
            ssd_section = DetectorSection(model=SSD, threads=1, **SSD_SETTINGS)
            ssd_tracker = tracker_section.model_copy(update=SSD_TRACKER)
            ssd = Detector(ssd_section)
            report["baseline_ssd"] = evaluate(
                VisionPipeline(MotionSection(), ssd, ssd_section, ssd_tracker), lambda r: r.tracks
            )
    street = args.street or args.video.resolve().parent.parent / "street"
    if (street / "labelme_street").is_dir():
        # Also at 0.3: INT8 YOLOX scores big vehicles low (the bus in bus.jpg: 0.43, 0.91 in fp32).
        report["vehicles"] = {
            detector.model.name: vehicle_figures(detector, street),
            f"{detector.model.name}@0.3": vehicle_figures(detector, street, min_score=0.3),
        }
        if args.model != SSD and not args.no_baseline:
            ssd = Detector(DetectorSection(model=SSD, threads=1))
            report["vehicles"][SSD] = vehicle_figures(ssd, street)
            report["vehicles"][f"{SSD}@0.3"] = vehicle_figures(ssd, street, min_score=0.3)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
