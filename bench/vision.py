"""Benchmark the camera's vision pipeline against MOT ground truth, with a whole-frame baseline in the same run.

    python bench/vision.py --video ../shared/data/pets09-s2l1/vtest.avi --gt ../shared/data/pets09-s2l1/gt.txt --json

Prints one JSON object: frames, recall, precision, mota, idf1, id_switches, ms_per_frame (mean CPU ms per frame
of the pipeline, one detector thread) and ``baseline_full_frame`` with the same keys: the same model on the whole
frame resized, every frame, through the same tracker. Persons only, IoU 0.5 (py-motmetrics). Without --gt it
reports tracks per frame instead of accuracy. Frame k of the video (0-based) is frame k+1 of the MOT file.
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

PERSON = "person"


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
    parser.add_argument("--no-baseline", action="store_true", help="skip the whole-frame baseline run")
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
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
