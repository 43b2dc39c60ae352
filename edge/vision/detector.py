"""Object detection on LiteRT (ai-edge-litert), tflite-runtime or a Coral EdgeTPU, with two decoders.

``Detector.detect(image, window)`` runs the model once on one window of the frame (the whole frame when window
is None) and returns detections in native frame pixels. Choosing the windows is the pipeline's job.

- ``ssd_postprocess``: a quantized SSD with TFLite's own post-processing (boxes, classes, scores, count); the
  window is resized (stretched) to the input, RGB.
- ``yolox``: YOLOX's raw grid output ``[1, N, 5 + classes]`` (strides 8/16/32); the window is letterboxed into
  the input's top-left corner (aspect kept, the rest 114), BGR 0-255; decoded and NMS'd per class here.

Which decoder a model needs comes from the manifest (``outputs``), or for a model file from its output tensors.
Input and output tensors may be float32 or quantized (uint8/int8): their quantization parameters are applied.
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
    outputs: str = ""  # "ssd_postprocess" | "yolox"; "" to infer from the model's output tensors
    label_thresholds: dict[str, float] | None = (
        None  # the manifest's, for labels the model scores unlike others
    )


DECODERS = ("ssd_postprocess", "yolox")
YOLOX_STRIDES = (8, 16, 32)
LETTERBOX_FILL = 114


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
    entry = store.entry(section.model)
    thresholds = {str(k): float(v) for k, v in entry.extra.get("label_thresholds", {}).items()}
    return ModelInfo(
        section.model, store.sha256_of(path), path, store.labels(section.model), entry.outputs, thresholds
    )


def yolox_grid(input_h: int, input_w: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell offsets [N, 2] as col, row; stride [N, 1]) for YOLOX's row-major grids at strides 8/16/32."""
    cells, strides = [], []
    for stride in YOLOX_STRIDES:
        gh, gw = input_h // stride, input_w // stride
        rr, cc = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells.append(np.stack([cc.ravel(), rr.ravel()], axis=1))
        strides.append(np.full((gh * gw, 1), stride))
    grid, stride = np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)
    if len(grid) != rows:
        raise DetectorError(
            f"YOLOX output has {rows} rows; a {input_w}x{input_h} input at strides 8/16/32 gives {len(grid)}"
        )
    return grid, stride


def decode_yolox(
    raw: np.ndarray,
    grid: np.ndarray,
    stride: np.ndarray,
    classes: np.ndarray,
    min_score: float,
    nms_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes [K, 4] x, y, w, h in input px, scores [K], class ids [K]) from YOLOX's [N, 5 + C] output.

    Only the class ids in ``classes`` compete (a person's box is not lost to a higher "handbag" score); score is
    objectness x class score; overlapping boxes of one class are suppressed (IoU above ``nms_iou``).
    """
    candidates = np.flatnonzero(raw[:, 4] >= min_score)  # a class score is at most 1: obj bounds the score
    if len(candidates) == 0 or len(classes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    rows = raw[candidates]
    class_scores = rows[:, 5 + classes] * rows[:, 4:5]
    best = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(rows)), best]
    keep = scores >= min_score
    rows, scores, best, candidates = rows[keep], scores[keep], classes[best[keep]], candidates[keep]
    if len(rows) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    s = stride[candidates]
    centre = (rows[:, 0:2] + grid[candidates]) * s
    size = np.exp(np.clip(rows[:, 2:4], -10.0, 10.0)) * s
    boxes = np.concatenate([centre - size / 2, size], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(
        boxes.tolist(), scores.tolist(), best.tolist(), float(min_score), float(nms_iou)
    )
    kept = np.asarray(kept, np.int64).reshape(-1)
    return boxes[kept], scores[kept], best[kept]


def quantize(tensor: np.ndarray, detail: dict) -> np.ndarray:
    """Float input values to the tensor's dtype, through its (scale, zero point) when it is quantized."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return tensor.astype(dtype, copy=False)
    scale, zero = detail.get("quantization", (0.0, 0))
    info = np.iinfo(dtype)
    if scale:
        tensor = np.round(tensor.astype(np.float32) / scale + zero)
    return np.clip(tensor, info.min, info.max).astype(dtype)


def dequantize(tensor: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(tensor.dtype, np.floating):
        return tensor
    scale, zero = detail.get("quantization", (0.0, 0))
    return (tensor.astype(np.float32) - zero) * scale if scale else tensor.astype(np.float32)


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
        self._input = inp
        self._input_index = inp["index"]
        self._input_dtype = inp["dtype"]
        _, self.input_h, self.input_w, _ = inp["shape"]
        self.decoder = self.model.outputs or self._infer_decoder()
        if self.decoder not in DECODERS:
            raise DetectorError(
                f"model {self.model.name}: unknown outputs {self.decoder!r} (know {DECODERS})"
            )
        if self.decoder == "ssd_postprocess":
            if self._input_dtype not in (np.uint8, np.int8):
                raise DetectorError(
                    f"model {self.model.path} takes {self._input_dtype}: an SSD needs a uint8/int8 input"
                )
            self._outputs = self._postprocess_outputs()
        else:
            self._yolox_setup()
        # Per-label thresholds: the configured ones, else the model's (manifest), else none.
        chosen = section.label_thresholds
        self.label_thresholds = dict(self.model.label_thresholds or {}) if chosen is None else dict(chosen)
        self._keep = {i for i, label in enumerate(self.model.labels) if label in set(section.labels)}
        self._keep_ids = np.array(sorted(i for i in self._keep if i < self._num_classes()), np.int64)
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

    def threshold(self, label: str) -> float:
        """The score a detection of ``label`` needs to be reported."""
        return self.label_thresholds.get(label, self.section.score_threshold)

    def threshold_offsets(self) -> dict[str, float]:
        """How much lower (positive) each label's threshold sits than score_threshold, for the tracker."""
        return {label: self.section.score_threshold - t for label, t in self.label_thresholds.items()}

    def _infer_decoder(self) -> str:
        details = self.interpreter.get_output_details()
        if len(details) == 1 and len(details[0]["shape"]) == 3 and details[0]["shape"][2] > 5:
            return "yolox"
        return "ssd_postprocess"

    def _num_classes(self) -> int:
        return self._classes if self.decoder == "yolox" else len(self.model.labels)

    def _yolox_setup(self) -> None:
        details = self.interpreter.get_output_details()
        if len(details) != 1 or len(details[0]["shape"]) != 3:
            raise DetectorError(
                f"model {self.model.path} has no YOLOX output (expected one [1, N, 5 + classes])"
            )
        self._output = details[0]
        _, rows, width = details[0]["shape"]
        self._classes = int(width) - 5
        self._grid, self._stride = yolox_grid(int(self.input_h), int(self.input_w), int(rows))
        self._canvas = np.full((self.input_h, self.input_w, 3), LETTERBOX_FILL, np.float32)

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

        ``min_score`` defaults to each label's configured threshold; the tracker asks for lower ones to bridge dips.
        """
        if min_score is None:  # each label at its own threshold (label_thresholds)
            lowest = min([self.section.score_threshold, *self.label_thresholds.values()])
            found = self.detect(image, window, lowest)
            return [d for d in found if d.score >= self.threshold(d.label)]
        frame_h, frame_w = image.shape[:2]
        x0, y0, w, h = window if window is not None else (0, 0, frame_w, frame_h)
        crop = image[y0 : y0 + h, x0 : x0 + w]
        if self.decoder == "yolox":
            return self._detect_yolox(crop, x0, y0, min_score, frame_w, frame_h)
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

    def _detect_yolox(
        self, crop: np.ndarray, x0: int, y0: int, min_score: float, frame_w: int, frame_h: int
    ) -> list[Detection]:
        h, w = crop.shape[:2]
        scale = min(self.input_h / h, self.input_w / w)
        new_w, new_h = (
            max(1, min(self.input_w, round(w * scale))),
            max(1, min(self.input_h, round(h * scale))),
        )
        canvas = self._canvas
        canvas[new_h:] = LETTERBOX_FILL
        canvas[:new_h, new_w:] = LETTERBOX_FILL
        # Area averaging when shrinking (as the INT8 calibration frames were made; bilinear at 0.54 aliases: tried,
        # precision fell 0.905 -> 0.873 on PETS), bilinear when enlarging; a native window is copied as it is.
        if (new_w, new_h) == (w, h):
            canvas[:h, :w] = crop
        else:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            canvas[:new_h, :new_w] = cv2.resize(crop, (new_w, new_h), interpolation=interpolation)
        self.interpreter.set_tensor(self._input_index, quantize(canvas, self._input)[np.newaxis])
        self.interpreter.invoke()
        raw = dequantize(self.interpreter.get_tensor(self._output["index"])[0], self._output)
        boxes, scores, classes = decode_yolox(
            raw, self._grid, self._stride, self._keep_ids, min_score, self.section.nms_iou
        )
        found = []
        for (bx, by, bw, bh), score, cls in zip(boxes, scores, classes, strict=True):
            bx0 = min(max(x0 + bx / scale, x0), x0 + w, frame_w)
            by0 = min(max(y0 + by / scale, y0), y0 + h, frame_h)
            bx1 = min(x0 + (bx + bw) / scale, x0 + w, frame_w)
            by1 = min(y0 + (by + bh) / scale, y0 + h, frame_h)
            if bx1 - bx0 < 2 or by1 - by0 < 2:
                continue
            found.append(
                Detection(
                    (float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)),
                    float(score),
                    self.model.labels[cls],
                )
            )
        return found
