"""What a clip frame costs to encode, for each clip codec that works here.

    python bench/clips.py --video ../shared/data/pets09-s2l1/vtest.avi --fps 5 --json

Feeds the video's frames (sampled at ``--fps``) through ``edge.evidence.video.ClipWriter`` exactly as the
camera's clip thread does (BGR to YUV, encode, mux, the byte bound) and prints one JSON object: per codec,
the encoder, ``ms_per_frame`` (wall, the best of ``--repeat`` runs), ``cpu_ms_per_frame`` (CPU of the whole
process, encoder threads included) and ``kbit_per_s`` of the file at the clip's frame rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kuzet.edge.evidence.video import CODECS, ClipWriter, choose_codec  # noqa: E402


def sampled_frames(video: Path, fps: float, count: int) -> list:
    capture = cv2.VideoCapture(str(video))
    step = max(1, round((capture.get(cv2.CAP_PROP_FPS) or fps) / fps))
    frames, index = [], 0
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(image)
        index += 1
    capture.release()
    return frames


def measure(codec, frames, fps: float, directory: Path) -> tuple[float, float, int]:
    """(wall ms, CPU ms) per frame and the file's size in bytes, for one clip of ``frames``."""
    height, width = frames[0].shape[:2]
    path = directory / f"bench{codec.ext}"
    wall, cpu = time.perf_counter(), time.process_time()
    writer = ClipWriter(path, codec, (width, height), fps, max_bytes=1_000_000_000, max_bit_rate=20_000_000)
    for image in frames:
        writer.write(image)
    writer.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall * 1000 / len(frames), cpu * 1000 / len(frames), path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    frames = sampled_frames(args.video, args.fps, args.frames)
    result = {"frames": len(frames), "size": list(frames[0].shape[1::-1]), "fps": args.fps, "codecs": {}}
    with tempfile.TemporaryDirectory() as directory:
        for name in CODECS:
            codec = choose_codec(name)
            if codec.name != name:
                continue  # not encodable here
            runs = [measure(codec, frames, args.fps, Path(directory)) for _ in range(args.repeat)]
            wall, cpu, size = min(runs)
            result["codecs"][name] = {
                "encoder": codec.encoder,
                "ms_per_frame": round(wall, 2),
                "cpu_ms_per_frame": round(cpu, 2),
                "kbit_per_s": round(size * 8 / (len(frames) / args.fps) / 1000),
            }
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in result["codecs"].items():
            print(
                f"{name:5} {row['encoder']:13} {row['ms_per_frame']:7.2f} ms/frame  {row['kbit_per_s']} kbit/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
