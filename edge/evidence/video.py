"""Clip files through PyAV (FFmpeg): which codec this board really encodes, and a writer that keeps a clip
inside its byte bound (reading back a file whose writer was killed is ``edge.evidence.readback``).

H.264 goes into fragmented MP4 (an empty index up front, then a fragment per keyframe, one a second): every
browser plays it, and a file cut by a kill is readable up to its last whole fragment. The Pi's hardware
encoder (``h264_v4l2m2m``) is tried first, then ``libx264``; then VP8 WebM (browsers play it too), then
Motion-JPEG AVI, which every FFmpeg writes. Each encoder is probed once with a real encode, because one that
is built in may still fail to open (no V4L2 device, a driver refusing the size).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codec:
    name: str  # the [evidence] clip_codec value that asks for it
    encoder: str  # FFmpeg's encoder
    format: str  # FFmpeg's muxer
    ext: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    bits_per_pixel: float | None = None  # rate-controlled encoders: the target, before the clip's byte budget
    crf: int | None = None  # quality-controlled encoders (libx264): capped by the byte budget


# Every muxed packet reaches the file at once, so a kill loses only what the muxer itself still holds.
_FLUSHED = {"flush_packets": "1"}
_FRAGMENTED_MP4 = {**_FLUSHED, "movflags": "frag_keyframe+empty_moov+default_base_moof"}

# In the order "auto" tries them; a name's encoders are alternatives for it.
CODECS: dict[str, tuple[Codec, ...]] = {
    "h264": (
        Codec("h264", "h264_v4l2m2m", "mp4", ".mp4", "yuv420p", bits_per_pixel=0.35),
        Codec(
            "h264",
            "libx264",
            "mp4",
            ".mp4",
            "yuv420p",
            # veryfast: twice ultrafast's cost for two thirds of its size; zerolatency: no frames held back.
            {"preset": "veryfast", "tune": "zerolatency"},
            crf=26,
        ),
    ),
    # realtime, no look-ahead: VP8 at its cheapest, every frame out as soon as it is encoded.
    "vp8": (
        Codec(
            "vp8",
            "libvpx",
            "webm",
            ".webm",
            "yuv420p",
            {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
            bits_per_pixel=0.4,
        ),
    ),
    "mjpg": (Codec("mjpg", "mjpeg", "avi", ".avi", "yuvj420p", bits_per_pixel=1.0),),
}
CONTAINER_OPTIONS = {"mp4": _FRAGMENTED_MP4, "webm": _FLUSHED, "avi": _FLUSHED}

_usable: dict[str, bool] = {}


def _works(codec: Codec) -> bool:
    """Whether ``codec`` really encodes here: a few frames into memory, once per process."""
    if codec.encoder not in _usable:
        if codec.encoder not in av.codecs_available:
            log.info("clips: this FFmpeg has no %s encoder", codec.encoder)
            _usable[codec.encoder] = False
            return False
        buffer = io.BytesIO()
        try:
            writer = ClipWriter(
                buffer, codec, (320, 240), fps=5.0, max_bytes=10_000_000, max_bit_rate=1_000_000
            )
            for shade in range(0, 250, 50):
                writer.write(np.full((240, 320, 3), shade, np.uint8))
            writer.close()
            _usable[codec.encoder] = writer.frames > 0 and buffer.tell() > 0
        except Exception as exc:  # a board's encoder can fail in any way FFmpeg or its driver knows
            log.info("clips: the %s encoder does not work here: %s", codec.encoder, exc)
            _usable[codec.encoder] = False
    return _usable[codec.encoder]


def choose_codec(preference: str = "auto") -> Codec:
    """The first encoder that works here of ``preference`` (a key of CODECS), falling back in CODECS' order;
    with "auto", simply the first that works."""
    names = list(CODECS)
    if preference != "auto":
        names.remove(preference)
        names.insert(0, preference)
    for name in names:
        for codec in CODECS[name]:
            if _works(codec):
                if preference not in ("auto", name):
                    log.warning("clips: %s cannot be encoded here; writing %s instead", preference, name)
                log.debug("clips: %s via %s in %s", name, codec.encoder, codec.format)
                return codec
    raise RuntimeError("this FFmpeg encodes none of H.264, VP8 or Motion JPEG: no clips")


class ClipWriter:
    """Encodes BGR frames at a constant ``fps`` into ``target`` (a path or a binary file). A packet that would
    take the file past ``max_bytes`` is not written: ``write`` then returns False and the clip is full."""

    # What the container adds to the packets (headers, per-fragment boxes, the index at the end), kept free.
    _OVERHEAD_BYTES = 8_192  # measured: under 6 kB (AVI), 1 kB (MP4) and 0.5 kB (WebM)
    _OVERHEAD_PER_FRAME = 64  # measured: under 50 bytes a frame

    def __init__(
        self, target, codec: Codec, size: tuple[int, int], fps: float, max_bytes: int, max_bit_rate: int
    ):
        width, height = size[0] - size[0] % 2, size[1] - size[1] % 2  # 4:2:0 wants even sizes
        rate = Fraction(fps).limit_denominator(1000)
        self.codec, self.size, self.max_bytes = codec, (width, height), max_bytes
        self.frames = 0  # frames in the file
        self.bytes = 0  # their packets' bytes
        self.full = False
        self._pts = 0
        self._container = av.open(
            target if isinstance(target, io.IOBase) else str(target),
            mode="w",
            format=codec.format,
            options=CONTAINER_OPTIONS[codec.format],
        )
        try:
            options = dict(codec.options)
            bit_rate = max_bit_rate
            if codec.bits_per_pixel is not None:
                bit_rate = min(bit_rate, int(width * height * fps * codec.bits_per_pixel))
            if codec.crf is not None:  # quality first; the VBV caps the rate so the clip fits its budget
                options.update(crf=str(codec.crf), maxrate=str(bit_rate), bufsize=str(2 * bit_rate))
            self._stream = self._container.add_stream(codec.encoder, rate=rate, options=options)
            context = self._stream.codec_context
            context.width, context.height, context.pix_fmt = width, height, codec.pix_fmt
            context.time_base = 1 / rate
            context.gop_size = max(1, round(fps))  # a keyframe (and an MP4 fragment) a second
            context.max_b_frames = 0
            if codec.crf is None:
                context.bit_rate = bit_rate
            context.open()
        except BaseException:
            self._container.close()
            raise

    def write(self, image: np.ndarray) -> bool:
        """Encode one BGR frame; False once the clip is full (this frame and later ones are left out)."""
        if self.full:
            return False
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame = frame.reformat(
            width=self.size[0], height=self.size[1], format=self.codec.pix_fmt, interpolation="AREA"
        )
        frame.pts = self._pts
        self._pts += 1
        self._mux(self._stream.encode(frame))
        return not self.full

    def close(self) -> None:
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()

    def _mux(self, packets) -> None:
        for packet in packets:
            room = self.max_bytes - self._OVERHEAD_BYTES - self._OVERHEAD_PER_FRAME * (self.frames + 1)
            if self.full or self.bytes + packet.size > room:
                self.full = True
                continue
            self._container.mux(packet)
            self.bytes += packet.size
            self.frames += 1
