"""Benchmark the incident rules: the camera pipeline's events against the same rules on the ground truth.

    python bench/events.py --video ../shared/data/pets09-s2l1/vtest.avi --gt ../shared/data/pets09-s2l1/gt.txt \
        --rules bench/pets09_rules.toml --json

The footage goes through the camera's vision pipeline (default settings) and the rules file's zones, lines and
rules. The reference runs the same rules on the ground-truth tracks (perfect perception: the MOT boxes as
confirmed person tracks with their gt ids, time stamps from the video's fps). A pipeline event matches a
reference event when they have the same rule and zone, overlap in time (within ``--slack`` seconds) and share
a person: one of the event's tracks overlaps the reference event's gt person by IoU >= 0.5 in most of the frames
where both are seen. Each pipeline event reports the one matching reference event it overlaps longest;
a reference event reported by more than one is duplicated. Per rule and overall it prints events, reference, matched (pipeline events that match),
precision, recall, duplicates (share of reference events reported as more than one event) and
events_per_camera_hour; ``without_lifecycle`` is the same pipeline run with every raw condition an event (no
grace, cool-down, re-identification or crowd hysteresis), scored against the same reference.
Without --gt it reports events and events per camera-hour only. Frame k of the video is frame k+1 of the MOT
file. The rules run on the camera's frames as it would (littering needs the pictures); where a rule uses the
static-foreground model, ``static_foreground`` says what that model cost in CPU per sample and per frame. Every
rule in the file is listed, those that raised nothing too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from kuzet.edge.events.config import LineSection, RuleSection, ZoneSection  # noqa: E402
from kuzet.edge.events.engine import EventEngine  # noqa: E402
from kuzet.edge.vision.config import DetectorSection, MotionSection, SourceSection, TrackerSection  # noqa: E402
from kuzet.edge.vision.pipeline import VisionPipeline  # noqa: E402
from kuzet.edge.vision.sources import open_source  # noqa: E402
from kuzet.edge.vision.static import StaticForeground  # noqa: E402
from kuzet.edge.vision.tracker import iou_matrix  # noqa: E402
from kuzet.edge.vision.types import Frame, FrameResult, Track  # noqa: E402

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
MIN_IOU = 0.5


@dataclass
class Incident:
    rule: str
    zone: str | None
    start: float  # seconds into the video
    end: float
    track_ids: set[int] = field(default_factory=set)


def load_rules(path: Path) -> tuple[list[ZoneSection], list[LineSection], list[RuleSection]]:
    data = tomllib.loads(path.read_text())
    return (
        [ZoneSection(**z) for z in data.get("zones", [])],
        [LineSection(**line) for line in data.get("lines", [])],
        [RuleSection(**r) for r in data.get("rules", [])],
    )


def video_info(video: Path) -> tuple[float, int, int]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return (fps if 0 < fps < 1000 else 25.0), w, h


def pipeline_results(video: Path, max_frames: int | None = None) -> list[FrameResult]:
    """The camera pipeline's results, frame by frame; images dropped (the track rules need only the frame
    size)."""
    return camera_run(video, None, max_frames)[0]


def camera_run(video: Path, rules_file, max_frames: int | None = None):
    """The camera as it runs: the pipeline, and the rules fed each frame with its image (littering needs the
    pictures), with and without the lifecycle. Returns the results (images dropped), the incidents of each
    engine ({True: with the lifecycle, False: without}) and what the static-foreground model cost."""
    detector_section = DetectorSection(threads=1)
    pipeline = VisionPipeline.from_config(MotionSection(), detector_section, TrackerSection())
    source = open_source(SourceSection(kind="file", uri=str(video)))
    recorders = {lc: Recorder(rules_file, lc) for lc in (True, False)} if rules_file else {}
    # Timed on its own (the engines' models do the same work): CPU per sample and per frame.
    static = StaticForeground() if any(r.engine.static for r in recorders.values()) else None
    static_s, samples, last = 0.0, 0, None
    out: list[FrameResult] = []
    blank = None
    for frame in source:
        if max_frames is not None and len(out) >= max_frames:
            break
        result = pipeline.process(frame)
        for recorder in recorders.values():
            recorder.feed(result)
        if static is not None:
            started = time.process_time()
            regions = static.feed(frame)
            static_s += time.process_time() - started
            samples += regions is not last
            last = regions
        if blank is None:
            blank = np.zeros_like(frame.image)
        out.append(FrameResult(Frame(blank, frame.index, frame.ts), result.tracks, [], 0.0, 0.0))
    source.close()
    found = {lc: recorder.finish() for lc, recorder in recorders.items()}
    cost = None
    if static is not None and out:
        cost = {
            "samples": samples,
            "cpu_ms_per_sample": round(1000 * static_s / max(samples, 1), 2),
            "cpu_ms_per_frame": round(1000 * static_s / len(out), 2),
        }
    return out, found, cost


def truth_results(gt: Path, fps: float, size: tuple[int, int], frames: int) -> list[FrameResult]:
    """Perfect perception: every scored gt person as a confirmed track with its gt id; velocity from its foot
    over the last 0.5 s."""
    scored: dict[int, list] = defaultdict(list)
    for line in gt.read_text().splitlines():
        parts = line.split(",")
        if len(parts) < 6 or (len(parts) > 6 and float(parts[6]) == 0):
            continue
        scored[int(float(parts[0]))].append((int(float(parts[1])), tuple(float(v) for v in parts[2:6])))
    blank = np.zeros((size[1], size[0], 3), np.uint8)
    back = max(1, round(fps / 2))
    out = []
    for k in range(frames):
        earlier = dict(scored.get(k + 1 - back, []))
        tracks = []
        for gid, box in scored.get(k + 1, []):
            before = earlier.get(gid, box)
            dt = back / fps
            velocity = ((box[0] - before[0]) / dt, (box[1] + box[3] - before[1] - before[3]) / dt)
            tracks.append(Track(gid, "person", 1.0, box, 10, 10, 0, velocity, True))
        out.append(FrameResult(Frame(blank, k, k / fps), tracks, [], 0.0, 0.0))
    return out


class Recorder:
    """An engine fed frame by frame, collecting its events as incidents (time in seconds into the video)."""

    def __init__(self, rules_file, lifecycle: bool = True):
        zones, lines, rules = rules_file
        self.now = EPOCH
        self.engine = EventEngine("bench", zones, lines, rules, clock=lambda: self.now, lifecycle=lifecycle)
        self.found: dict[str, Incident] = {}
        self.last: Frame | None = None

    def feed(self, result: FrameResult) -> None:
        self.now = EPOCH + timedelta(seconds=result.frame.ts)
        self.last = result.frame
        self._take(self.engine.process(result))

    def finish(self) -> list[Incident]:
        if self.last is not None:
            self._take(self.engine.close_all(self.last))
        return list(self.found.values())

    def _take(self, changes) -> None:
        for change in changes:
            e = change.event
            rule = e.attributes["rule"]
            start = (e.started_at - EPOCH).total_seconds()
            item = self.found.setdefault(e.event_id, Incident(rule, e.zone, start, start))
            item.track_ids |= set(e.track_ids)
            item.end = ((e.ended_at or self.now) - EPOCH).total_seconds()


def incidents(results: list[FrameResult], rules_file, lifecycle: bool = True) -> list[Incident]:
    recorder = Recorder(rules_file, lifecycle)
    for result in results:
        recorder.feed(result)
    return recorder.finish()


def same_people(pipeline: list[FrameResult], truth: list[FrameResult]) -> set[tuple[int, int]]:
    """(track id, gt id) pairs where the track overlaps the person by IoU >= 0.5 in most frames both are seen."""
    both: dict[tuple[int, int], int] = defaultdict(int)
    hits: dict[tuple[int, int], int] = defaultdict(int)
    for ours, theirs in zip(pipeline, truth, strict=False):
        hyp = [t for t in ours.tracks if t.label == "person"]
        if not hyp or not theirs.tracks:
            continue
        overlap = iou_matrix(np.array([t.box for t in hyp]), np.array([t.box for t in theirs.tracks]))
        for i, t in enumerate(hyp):
            for j, g in enumerate(theirs.tracks):
                both[(t.track_id, g.track_id)] += 1
                hits[(t.track_id, g.track_id)] += int(overlap[i, j] >= MIN_IOU)
    return {pair for pair, n in both.items() if hits[pair] > n / 2}


def _matches(e: Incident, r: Incident, pairs, slack: float) -> bool:
    return (
        e.rule == r.rule
        and e.zone == r.zone
        and e.start <= r.end + slack
        and r.start <= e.end + slack
        and any((t, g) in pairs for t in e.track_ids for g in r.track_ids)
    )


def score(
    events: list[Incident], reference: list[Incident], pairs, slack: float, hours: float, names=()
) -> dict:
    """Per rule (every rule in ``names``, and any that raised or has reference events) and overall."""
    by_rule = sorted(set(names) | {e.rule for e in events} | {r.rule for r in reference})
    report = {}
    for rule in [*by_rule, None]:
        ours = [e for e in events if rule is None or e.rule == rule]
        theirs = [r for r in reference if rule is None or r.rule == rule]
        found: set[int] = set()  # reference events some pipeline event matches
        assigned = defaultdict(int)  # reference index -> pipeline events counted as reporting it
        matched = 0
        for e in ours:
            hits = [k for k, r in enumerate(theirs) if _matches(e, r, pairs, slack)]
            if not hits:
                continue
            matched += 1
            found.update(hits)
            # the one incident this event reports: the matching one it overlaps longest
            assigned[max(hits, key=lambda k: min(e.end, theirs[k].end) - max(e.start, theirs[k].start))] += 1
        report[rule or "overall"] = {
            "events": len(ours),
            "reference": len(theirs),
            "matched": matched,
            "precision": round(matched / len(ours), 3) if ours else None,
            "recall": round(len(found) / len(theirs), 3) if theirs else None,
            "duplicates": round(sum(n > 1 for n in assigned.values()) / len(theirs), 3) if theirs else None,
            "events_per_camera_hour": round(len(ours) / hours, 1),
        }
    return report


def rate_only(events: list[Incident], hours: float, names=()) -> dict:
    report = {}
    for rule in [*sorted(set(names) | {e.rule for e in events}), None]:
        ours = [e for e in events if rule is None or e.rule == rule]
        report[rule or "overall"] = {
            "events": len(ours),
            "events_per_camera_hour": round(len(ours) / hours, 1),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--gt", type=Path, help="MOT-format ground truth (omit: events per camera-hour only)")
    parser.add_argument("--rules", type=Path, required=True, help="TOML with [[zones]], [[lines]], [[rules]]")
    parser.add_argument("--frames", type=int, help="only the first N frames")
    parser.add_argument("--slack", type=float, default=1.0, help="seconds of tolerance on time overlap")
    parser.add_argument("--json", action="store_true", help="one line of JSON (default: indented)")
    args = parser.parse_args(argv)

    rules_file = load_rules(args.rules)
    fps, w, h = video_info(args.video)
    ours, found, static_cost = camera_run(args.video, rules_file, args.frames)
    hours = len(ours) / fps / 3600
    with_lc, without_lc = found[True], found[False]
    names = [rule.name for rule in rules_file[2]]
    report = {"video": args.video.name, "frames": len(ours), "fps": fps, "rules": args.rules.name}
    if static_cost is not None:
        report["static_foreground"] = static_cost
    if args.gt is None:
        report |= {
            "events": rate_only(with_lc, hours, names),
            "without_lifecycle": rate_only(without_lc, hours, names),
        }
    else:
        truth = truth_results(args.gt, fps, (w, h), len(ours))
        reference = incidents(truth, rules_file)
        pairs = same_people(ours, truth)
        report["events"] = score(with_lc, reference, pairs, args.slack, hours, names)
        report["without_lifecycle"] = score(without_lc, reference, pairs, args.slack, hours, names)
        report["reference_without_lifecycle"] = rate_only(
            incidents(truth, rules_file, lifecycle=False), hours
        )
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
