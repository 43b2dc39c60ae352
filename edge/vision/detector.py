"""Object detection with a quantized SSD model on LiteRT (ai-edge-litert), tflite-runtime or a Coral EdgeTPU.

``Detector.detect(image, window)`` runs the model once on one window of the frame (the whole frame when window
is None), resized to the model's input, and returns detections in native frame pixels. Choosing the windows is
the pipeline's job.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kuzet.edge.vision.config import DetectorSection
from kuzet.edge.vision.types import Detection

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = {"posix": "libedgetpu.so.1", "nt": "edgetpu.dll"}.get(os.name, "libedgetpu.1.dylib")
Window = tuple[int, int, int, int]  # x, y, w, h in native frame pixels


class DetectorError(RuntimeError):
    """The detector cannot be built as configured; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str
    path: Path
    labels: list[str]


def _interpreter_class(backend: str):
    """(Interpreter, load_delegate, backend name) for the configured backend."""
    if backend in ("auto", "litert", "edgetpu"):
        try:
            from ai_edge_litert.interpreter import Interpreter, load_delegate

            return Interpreter, load_delegate, "litert"
        except ImportError as exc:
            if backend == "litert":
                raise DetectorError(f"backend 'litert' needs the ai-edge-litert package: {exc}") from None
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "tflite-runtime"
    except ImportError as exc:
        raise DetectorError(
            f"no TFLite runtime: install ai-edge-litert (or tflite-runtime on older boards) ({exc})"
        ) from None


def resolve_model(section: DetectorSection) -> ModelInfo:
    """The configured model: a manifest name (verified against its checksum) or a path to a .tflite file."""
    from kuzet.models import store

    candidate = Path(section.model).expanduser()
    if candidate.suffix == ".tflite" or candidate.is_file():
        if not candidate.is_file():
            raise DetectorError(f"model file {candidate} does not exist")
        if section.labels_path is None:
            raise DetectorError(
                f"model file {candidate} needs 'labels_path' (one label a line, class 0 first)"
            )
        labels = [line.strip() for line in section.labels_path.read_text(encoding="utf-8").splitlines()]
        return ModelInfo(candidate.stem, store.sha256_of(candidate), candidate, labels)
    try:
        path = store.resolve(section.model)
    except store.ModelError as exc:
        raise DetectorError(str(exc)) from None
    return ModelInfo(section.model, store.sha256_of(path), path, store.labels(section.model))


class Detector:
    def __init__(self, section: DetectorSection, model: ModelInfo | None = None):
        self.section = section
        self.model = model or resolve_model(section)
        Interpreter, load_delegate, self.backend = _interpreter_class(section.backend)
        delegates = []
        if section.backend == "edgetpu":
            try:
                ctypes.CDLL(
                    EDGETPU_LIBRARY
                )  # checked first: litert's delegate loader warns noisily when absent
                delegates.append(load_delegate(EDGETPU_LIBRARY))
            except (ValueError, OSError) as exc:
                raise DetectorError(
                    f"backend 'edgetpu' asked for but no Coral EdgeTPU is usable ({EDGETPU_LIBRARY}: {exc}); "
                    'plug the Coral in and install libedgetpu1-std, or set backend = "auto"'
                ) from None
            self.backend = "edgetpu"
        try:
            self.interpreter = Interpreter(
                model_path=str(self.model.path), num_threads=section.threads, experimental_delegates=delegates
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"cannot load model {self.model.path}: {exc}") from None
        inp = self.interpreter.get_input_details()[0]
        self._input_index = inp["index"]
        self._input_dtype = inp["dtype"]
        _, self.input_h, self.input_w, _ = inp["shape"]
        if self._input_dtype not in (np.uint8, np.int8):
            raise DetectorError(
                f"model {self.model.path} takes {self._input_dtype}: a uint8/int8 model is needed"
            )
        self._outputs = self._postprocess_outputs()
        self._keep = {i for i, label in enumerate(self.model.labels) if label in set(section.labels)}
        log.info(
            "detector %s (%s) on %s, %d thread(s), input %dx%d %s",
            self.model.name,
            self.model.sha256[:12],
            self.backend,
            section.threads,
            self.input_w,
            self.input_h,
            np.dtype(self._input_dtype).name,
        )

    def _postprocess_outputs(self) -> tuple[int, int, int]:
        """Tensor indices of boxes, classes, scores (TFLite_Detection_PostProcess names them :0..:3)."""
        details = self.interpreter.get_output_details()
        if len(details) != 4:
            raise DetectorError(f"model {self.model.path} has no SSD post-processing (expected 4 outputs)")

        def position(d):
            name = d["name"]
            return int(name.rsplit(":", 1)[1]) if ":" in name else 0

        by_position = sorted(details, key=position)
        boxes, classes, scores, _count = (d["index"] for d in by_position)
        return boxes, classes, scores

    def detect(
        self, image: np.ndarray, window: Window | None = None, min_score: float | None = None
    ) -> list[Detection]:
        """Detections of the kept labels in ``window`` of ``image`` (BGR), boxes in ``image`` pixels.

        ``min_score`` defaults to the configured threshold; the tracker asks for lower ones to bridge dips.
        """
        min_score = self.section.score_threshold if min_score is None else min_score
        frame_h, frame_w = image.shape[:2]
        x0, y0, w, h = window if window is not None else (0, 0, frame_w, frame_h)
        crop = image[y0 : y0 + h, x0 : x0 + w]
        interpolation = cv2.INTER_AREA if w > self.input_w else cv2.INTER_LINEAR
        tensor = cv2.cvtColor(
            cv2.resize(crop, (self.input_w, self.input_h), interpolation=interpolation), cv2.COLOR_BGR2RGB
        )
        if self._input_dtype == np.int8:
            tensor = (tensor.astype(np.int16) - 128).astype(np.int8)
        self.interpreter.set_tensor(self._input_index, tensor[np.newaxis])
        self.interpreter.invoke()
        boxes_i, classes_i, scores_i = self._outputs
        boxes = self.interpreter.get_tensor(boxes_i)[0]
        classes = self.interpreter.get_tensor(classes_i)[0]
        scores = self.interpreter.get_tensor(scores_i)[0]
        found = []
        for (ymin, xmin, ymax, xmax), cls, score in zip(boxes, classes, scores, strict=True):
            cls = int(cls)
            if score < min_score or cls not in self._keep:
                continue
            bx0 = x0 + max(0.0, float(xmin)) * w
            by0 = y0 + max(0.0, float(ymin)) * h
            bx1 = x0 + min(1.0, float(xmax)) * w
            by1 = y0 + min(1.0, float(ymax)) * h
            if bx1 - bx0 < 2 or by1 - by0 < 2:
                continue
            found.append(Detection((bx0, by0, bx1 - bx0, by1 - by0), float(score), self.model.labels[cls]))
        return found
