"""The camera's vision settings: where frames come from, what counts as motion, which detector, how tracks live.

Every key has a default that works on 768x576 street footage, so a camera's TOML may omit whole sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from kuzet.shared.config import KeyProblem, Section

Point = tuple[float, float]


class SourceSection(Section):
    kind: Literal["file", "usb", "rtsp", "picamera2", "images"] = "file"
    # file / images: a path; rtsp: an rtsp:// or http(s):// URL; usb: the device index (e.g. "0").
    uri: str = ""
    path: Path | None = None  # file / images: may be given here instead (relative to the TOML file)
    loop: bool = False  # file: start again at the end (demos)
    fps_limit: Annotated[float, Field(ge=0)] = 0.0  # 0: as fast as the source gives (files: as fast as read)
    realtime: bool = False  # file / images: pace frames at the file's own rate, as a live camera would
    size: tuple[int, int] | None = (
        None  # (width, height) asked of usb / picamera2 / rtsp; files keep their own
    )
    stall_timeout_s: Annotated[float, Field(gt=0)] = 10.0  # live source: no frame for this long means stalled
    backoff_initial_s: Annotated[float, Field(gt=0)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0)] = 30.0
    max_corrupt_in_row: Annotated[int, Field(ge=1)] = 25  # file: this many unreadable frames in a row ends it

    @model_validator(mode="after")
    def _check_location(self) -> SourceSection:
        if self.kind == "usb" and self.uri and not self.uri.isdigit():
            raise KeyProblem(("uri",), "source kind 'usb' needs 'uri' as a device index such as \"0\"")
        if self.path is not None and self.kind not in ("file", "images"):
            raise KeyProblem(
                ("path",), f"'path' is for kinds 'file' and 'images', not {self.kind!r}: use 'uri'"
            )
        return self

    @property
    def location(self) -> str:
        """Where frames come from, for opening and for logs ("" when nothing was configured)."""
        return str(self.path) if self.path is not None else self.uri


class MotionSection(Section):
    enabled: bool = True
    scale_width: Annotated[int, Field(ge=64, le=1280)] = 192  # motion runs on a grey copy this wide
    history: Annotated[int, Field(ge=10)] = 200  # frames the background model remembers
    var_threshold: Annotated[float, Field(gt=0)] = 25.0  # MOG2 squared Mahalanobis distance for "changed"
    min_area: Annotated[int, Field(ge=1)] = 30  # px at native resolution: smaller blobs are noise
    dilate: Annotated[int, Field(ge=0, le=10)] = 2  # px at motion scale: joins a body's parts into one blob
    # Areas that never count as motion (trees, a road outside the zone, a flickering sign), polygons in frame px.
    masks: list[list[Point]] = Field(default_factory=list)
    max_share: Annotated[float, Field(gt=0, le=1)] = 0.5  # more of the frame than this moving: a light change
    # A detection starts a new track only where at least this share of its box moved (0: anywhere), or when
    # the detector is at least static_start_score sure (a person already standing there when the camera started).
    start_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    static_start_score: Annotated[float, Field(ge=0, le=1)] = 0.75


class DetectorSection(Section):
    enabled: bool = True
    model: str = "yolox_nano_int8"  # a name from models/manifest.toml, or a path to a .tflite
    labels_path: Path | None = None  # only with a model path: one label a line
    backend: Literal["auto", "litert", "tflite-runtime", "edgetpu"] = "auto"
    threads: Annotated[int, Field(ge=1, le=16)] = 1
    score_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # Labels whose threshold differs from score_threshold, e.g. {car = 0.3, bus = 0.3}. None: the model's own, from
    # models/manifest.toml (the INT8 YOLOX lost confidence on large objects in quantization, so its vehicles are
    # at 0.3 there; see that entry). {}: every label at score_threshold.
    label_thresholds: dict[str, Annotated[float, Field(gt=0, lt=1)]] | None = None
    labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
    )
    # Motion regions are cut at native resolution in windows of this many px (None: the model's input side,
    # so a window reaches the model unscaled), so a far-away person keeps enough pixels to be found.
    window: Annotated[int, Field(ge=64, le=1280)] | None = None
    # Nearby regions share a window up to this side (None: 1.4 x window), resized down to the model's input: a
    # person keeps at least window/max_window of their pixels, and one inference covers a group.
    max_window: Annotated[int, Field(ge=64, le=2048)] | None = None
    max_windows: Annotated[int, Field(ge=1, le=32)] = 1  # per frame; the stalest motion windows go first
    # A window's area is searched again only after this many frames: small objects are far away, move a few px
    # a frame, and the tracker carries them in between (1: every frame).
    window_revisit: Annotated[int, Field(ge=1, le=100)] = 2
    # Objects shorter than this many px at the whole frame's scale in the model input are too small for the
    # whole-frame pass (COCO's "small": under 32x32 px, about 50 px tall for a person): only motion and tracks
    # that small get native-resolution windows. 0: every motion region and track gets a window.
    small_object_px: Annotated[float, Field(ge=0)] = 50.0
    # Every this many frames the whole frame, letterboxed or resized, is searched too (1: every frame, the
    # default since YOLOX: at 416 a 768x576 frame is seen at scale 0.54, enough for everyone but the small, and
    # it catches what motion missed: people standing still since the background learned them). 0 turns it off.
    full_frame_interval: Annotated[int, Field(ge=0)] = 1
    nms_iou: Annotated[float, Field(gt=0, le=1)] = 0.5


class TrackerSection(Section):
    high_score: Annotated[float, Field(gt=0, lt=1)] = 0.6  # first association stage: confident detections
    # Second stage keeps established tracks alive through dips (ByteTrack's 0.1: YOLOX has no box cap, so weak
    # detections of occluded people do reach the tracker; the SSD's 10-box post-processing made this moot).
    low_score: Annotated[float, Field(gt=0, lt=1)] = 0.1
    match_iou: Annotated[float, Field(gt=0, lt=1)] = 0.3  # at least this much overlap with the prediction
    min_hits: Annotated[int, Field(ge=1)] = 2  # detections before a track is reported (confirmed)
    max_age: Annotated[int, Field(ge=1)] = 15  # frames a track survives unseen (occlusions)
    history: Annotated[int, Field(ge=1, le=10_000)] = 64  # positions kept per track
    # A lost track is found again by its colours (hue-saturation histogram, 1: identical) within this many of
    # its heights of where it was predicted.
    refind_similarity: Annotated[float, Field(gt=0, le=1)] = 0.9
    refind_reach: Annotated[float, Field(gt=0)] = 2.0
    # Among detections overlapping a track's prediction by match_iou, the choice goes by IoU x similarity^this
    # (colour signatures, 1: identical): high values let colours decide within a group. 0: IoU alone.
    appearance_weight: Annotated[float, Field(ge=0)] = 12.0
