"""Reading back a video whose writer was killed: what a camera clip or a badge's evidence segment left on disk.

Imports PyAV only (no numpy, no OpenCV): the badge uses it on a board with 512 MB.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

log = logging.getLogger(__name__)

_FORMAT_OF = {".mp4": "mp4", ".webm": "webm", ".mkv": "matroska", ".avi": "avi"}
_REMUX_OPTIONS = {
    "matroska": {},
    "mp4": {"movflags": "+faststart"},  # a whole file now: the index goes first for players
    "webm": {},
    "avi": {},
}


def copy_readable(source: Path, target: Path) -> tuple[int, float]:
    """Copy the frames of ``source`` (a video whose writer was killed: no index, perhaps half a frame at the
    end) that read back whole into a complete file ``target`` of the container its suffix names, without
    re-encoding; stops at the first frame the kill cut short. Returns (frames copied, their duration in
    seconds); (0, 0.0) and no ``target`` when none reads back."""
    frames, duration_s = 0, 0.0
    target.unlink(missing_ok=True)
    try:
        with av.open(str(source)) as reader:
            if not reader.streams.video:
                return 0, 0.0
            stream = reader.streams.video[0]
            writer = None
            try:
                for packet in reader.demux(stream):
                    if packet.size == 0:
                        continue
                    if packet.is_corrupt:
                        break
                    try:
                        stream.codec_context.decode(packet)
                    except av.error.FFmpegError:
                        break  # the frame being written when the writer was killed
                    if writer is None:
                        format = _FORMAT_OF[target.suffix]
                        writer = av.open(str(target), mode="w", format=format, options=_REMUX_OPTIONS[format])
                        copied = writer.add_stream_from_template(stream)
                    packet.stream = copied
                    writer.mux(packet)
                    frames += 1
                rate = stream.average_rate or stream.guessed_rate
                duration_s = frames / float(rate) if rate else 0.0
            finally:
                if writer is not None:
                    writer.close()
    except Exception as exc:  # whatever a kill left in the file, the device must still start
        log.warning("%s cannot be read back: %s", source.name, exc)
        frames = 0
    if frames == 0:
        target.unlink(missing_ok=True)
        return 0, 0.0
    return frames, duration_s


def playable(video: Path) -> bool:
    """Whether at least one frame of ``video`` decodes."""
    try:
        with av.open(str(video)) as reader:
            return bool(reader.streams.video) and next(reader.decode(video=0), None) is not None
    except Exception:  # not a video FFmpeg can read, whatever the way it fails
        return False
