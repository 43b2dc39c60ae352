"""BlazeFace (MediaPipe, short range) on LiteRT: faces with their six keypoints in image pixels.

The model takes a 128x128 RGB image scaled to [-1, 1] and returns, for 896 fixed anchors, a box (centre, size)
and six keypoints as offsets in input pixels, plus a logit. The image is letterboxed into the input's top-left
corner (aspect kept) so that one scale maps the results back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kuzet.models.faces.files import INSTALL_HINT, FaceModelError, blazeface_path

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)  # two anchors per cell at stride 8, six at stride 16 (MediaPipe's SSD options)
NMS_IOU = 0.3
# Keypoint order of the model's output.
RIGHT_EYE, LEFT_EYE, NOSE, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


@dataclass(frozen=True)
class Face:
    """A detected face: box x, y, w, h and keypoints [6, 2] in the pixels of the image given, and the score."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return self.box[2]


def _anchors() -> np.ndarray:
    """Anchor centres [896, 2] in input pixels (x, y), in the model's order."""
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        repeats = 0
        while layer < len(STRIDES) and STRIDES[layer] == stride:
            repeats += 2
            layer += 1
        cells = INPUT_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) * stride, (y + 0.5) * stride)] * repeats)
    return np.array(centres, np.float32)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression over x0, y0, x1, y1 boxes, best score first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        best = order.pop(0)
        keep.append(best)
        x0 = np.maximum(boxes[best, 0], boxes[order, 0])
        y0 = np.maximum(boxes[best, 1], boxes[order, 1])
        x1 = np.minimum(boxes[best, 2], boxes[order, 2])
        y1 = np.minimum(boxes[best, 3], boxes[order, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area[best] + area[order] - inter
        order = [i for i, o in zip(order, inter / np.maximum(union, 1e-6), strict=True) if o <= iou]
    return keep


class FaceDetector:
    """BlazeFace on one image at a time; ``threads`` is LiteRT's thread count."""

    def __init__(self, min_score: float = 0.6, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise FaceModelError(f"face detection needs ai-edge-litert: {INSTALL_HINT}") from None

        self.min_score = min_score
        self._interpreter = Interpreter(model_path=str(blazeface_path()), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        # The regressors have 16 values per anchor, the scores one.
        by_width = {int(o["shape"][-1]): o["index"] for o in outputs}
        self._boxes_out, self._scores_out = by_width[16], by_width[1]
        self._anchors = _anchors()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image, best score first."""
        h, w = rgb.shape[:2]
        scale = INPUT_SIZE / max(h, w)
        resized = cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        tensor = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
        tensor[: resized.shape[0], : resized.shape[1]] = resized.astype(np.float32) / 127.5 - 1.0
        self._interpreter.set_tensor(self._input, tensor[np.newaxis])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._boxes_out)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores_out)[0, :, 0], -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        hits = np.flatnonzero(scores >= self.min_score)
        if len(hits) == 0:
            return []
        raw, scores, anchors = raw[hits], scores[hits], self._anchors[hits]
        centre = raw[:, 0:2] + anchors
        size = raw[:, 2:4]
        corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        faces = []
        for i in _nms(corners, scores, NMS_IOU):
            x0, y0, x1, y1 = (corners[i] / scale).tolist()
            if x1 <= x0 or y1 <= y0:
                continue
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), keypoints[i] / scale, float(scores[i])))
        return faces
