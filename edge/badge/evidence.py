"""Body-camera evidence: recorded in segments, each chained to the one before by SHA-256.

Under ``<storage>/evidence/``: ``<index>-<segment_id>.json`` (the EvidenceSegment record, kept on the badge)
and ``chain.json``, the head of the chain, so that a reboot continues the chain rather than starting a new
one. A sealed recording is handed to the delivery spool, which uploads it in chunks when connected and keeps
it until central has it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from edge.badge.camera import Camera, scaled
from edge.badge.config import EvidenceSection
from shared import evidence as chain
from shared import ids, timeutil
from shared.messages import EvidenceSegment

log = logging.getLogger(__name__)
CONTENT_TYPE = "video/x-msvideo"


def _now_ms():
    # Chain hashes use wire timestamps (milliseconds): keep the recorded times at that precision.
    return timeutil.from_wire(timeutil.now_wire())


class EvidenceStore:
    def __init__(self, directory: Path, device: str):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self._head_path = self.dir / "chain.json"
        self._lock = threading.Lock()

    def head(self) -> tuple[int, str | None]:
        """(next index, chain hash of the last segment)."""
        if not self._head_path.exists():
            return 0, None
        head = json.loads(self._head_path.read_text())
        return head["index"] + 1, head["chain_sha256"]

    def seal(
        self, video: Path, started_at, ended_at, dispatch_id: str | None
    ) -> tuple[EvidenceSegment, Path]:
        """Hash a finished recording into the chain and write its record; returns it and the renamed file."""
        with self._lock:
            index, prev = self.head()
            sha = chain.file_sha256(video)
            segment_id = ids.new_id()
            final = self.dir / f"{index:06d}-{segment_id}.avi"
            video.rename(final)
            segment = EvidenceSegment(
                device=self.device,
                segment_id=segment_id,
                index=index,
                started_at=started_at,
                ended_at=ended_at,
                size=final.stat().st_size,
                sha256=sha,
                prev_chain_sha256=prev,
                chain_sha256=chain.chain_hash(
                    prev, sha, index, timeutil.to_wire(started_at), timeutil.to_wire(ended_at)
                ),
                content_type=CONTENT_TYPE,
                dispatch_id=dispatch_id,
            )
            final.with_suffix(".json").write_text(segment.model_dump_json())
            tmp = self._head_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"index": index, "chain_sha256": segment.chain_sha256}))
            tmp.replace(self._head_path)
            return segment, final


class Recorder:
    """Writes camera frames into segments of ``segment_s`` seconds while recording is wanted."""

    def __init__(
        self,
        camera: Camera,
        store: EvidenceStore,
        settings: EvidenceSection,
        wanted: Callable[[], bool],
        dispatch_id: Callable[[], str | None],
        on_segment: Callable[[EvidenceSegment, Path], None],
    ):
        self.camera, self.store, self.settings = camera, store, settings
        self._wanted, self._dispatch_id, self._on_segment = wanted, dispatch_id, on_segment
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evidence", daemon=True)
        self.recording = False

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wanted():
                self._stop.wait(0.2)
                continue
            self.camera.acquire()
            self.recording = True
            try:
                while not self._stop.is_set() and self._wanted():
                    self._record_segment()
            except Exception:
                log.exception("evidence: recording failed")
                self._stop.wait(2.0)
            finally:
                self.recording = False
                self.camera.release()

    def _record_segment(self) -> None:
        period = 1.0 / self.settings.fps
        partial = self.store.dir / "recording-in-progress.avi"
        writer: _SegmentWriter | None = None
        started_at = _now_ms()
        began = time.monotonic()
        frames, last_seq = 0, -1
        dispatch_id = self._dispatch_id()
        try:
            while (
                not self._stop.is_set()
                and self._wanted()
                and time.monotonic() - began < self.settings.segment_s
            ):
                tick = time.monotonic()
                seq, frame = self.camera.latest()
                if frame is not None and seq != last_seq:
                    last_seq = seq
                    frame = scaled(frame, self.settings.width, "yuvj420p")
                    if writer is None:
                        writer = _SegmentWriter(partial, frame.width, frame.height, self.settings.fps)
                    writer.write(frame)
                    frames += 1
                self._stop.wait(max(0.0, period - (time.monotonic() - tick)))
        finally:
            if writer is not None:
                writer.close()
        if frames == 0:
            partial.unlink(missing_ok=True)
            return
        segment, video = self.store.seal(partial, started_at, _now_ms(), dispatch_id)
        log.info("evidence: segment %d sealed (%d frames, %d bytes)", segment.index, frames, segment.size)
        self._on_segment(segment, video)


class _SegmentWriter:
    """Motion-JPEG in AVI: every frame stands alone (a cut segment loses nothing), any player opens it, and the
    Pi's CPU encodes it at badge rates. Rate control aims at about one bit per pixel, JPEG quality ~75."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        import av

        self._container = av.open(str(path), mode="w", format="avi")
        rate = Fraction(fps).limit_denominator(1000)
        self._stream = self._container.add_stream("mjpeg", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuvj420p"
        self._stream.bit_rate = int(width * height * fps)
        self._stream.codec_context.time_base = 1 / rate
        self._pts = 0

    def write(self, frame) -> None:
        frame.pts, frame.time_base = self._pts, self._stream.codec_context.time_base
        self._pts += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
