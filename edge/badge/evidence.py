"""Body-camera evidence: recorded in segments, each chained to the one before by SHA-256.

Under ``<storage>/evidence/``: ``<index>-<segment_id>.avi`` and ``.json`` (the recording and its
EvidenceSegment record, kept on the badge), and ``chain.json``, the head of the chain, so that a reboot
continues the chain rather than starting a new one. A sealed recording is handed to the delivery spool
(``edge.badge.handover``), which uploads it in chunks when connected and keeps it until central has it.

Nothing is lost to a kill (a crash, a pulled battery) at any moment:

- The segment being recorded is ``recording-in-progress.avi``, with its start time and dispatch beside it in
  ``recording-in-progress.json``. Every frame is flushed to the file as it is written (Motion JPEG: each frame
  stands alone), so a killed recording reads back up to its last frame. At the next start ``recover`` copies
  the frames that read back into a complete file and seals it into the chain like any other segment, ending
  when the file was last written. If not one frame reads back, the bytes are sealed as they are and the
  upload path reports the recording lost (``interrupted``), so central's chain report says so.
- Sealing first writes what it is about to do (``sealing.json``: the record and the file it seals), then
  renames the recording, writes the record and moves the head. ``recover`` finishes a seal a kill cut short,
  so the chain never skips or repeats an index.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from kuzet.edge.badge.camera import Camera, scaled
from kuzet.edge.badge.config import EvidenceSection
from kuzet.edge.runtime.worker import Worker
from kuzet.shared import evidence as chain
from kuzet.shared import ids, timeutil
from kuzet.shared.messages import EvidenceSegment

log = logging.getLogger(__name__)
CONTENT_TYPE = "video/x-msvideo"


def _now_ms():
    # Chain hashes use wire timestamps (milliseconds): keep the recorded times at that precision.
    return timeutil.from_wire(timeutil.now_wire())


def _to_ms(moment: datetime) -> datetime:
    return timeutil.from_wire(timeutil.to_wire(moment))


def _write_atomic(path: Path, text: str) -> None:
    """Readers (and the next start after a kill) see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


class EvidenceStore:
    def __init__(self, directory: Path, device: str):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.partial = self.dir / "recording-in-progress.avi"
        self._partial_info = self.partial.with_suffix(".json")
        self._recovered = self.dir / "recording-recovered.avi"
        self._head_path = self.dir / "chain.json"
        self._intent = self.dir / "sealing.json"
        self._lock = threading.Lock()

    def head(self) -> tuple[int, str | None]:
        """(next index, chain hash of the last segment)."""
        if not self._head_path.exists():
            return 0, None
        head = json.loads(self._head_path.read_text())
        return head["index"] + 1, head["chain_sha256"]

    # --- the recording in progress ----------------------------------------------------------------------

    def begin(self, started_at: datetime, dispatch_id: str | None) -> Path:
        """Where the next segment is recorded; what ``recover`` needs to seal it after a kill is noted first."""
        info = {"started_at": timeutil.to_wire(started_at), "dispatch_id": dispatch_id}
        _write_atomic(self._partial_info, json.dumps(info))
        self.partial.unlink(missing_ok=True)
        return self.partial

    def discard(self) -> None:
        """The segment recorded no frame: nothing to seal."""
        self.partial.unlink(missing_ok=True)
        self._partial_info.unlink(missing_ok=True)

    # --- sealing ------------------------------------------------------------------------------------------

    def seal(
        self, video: Path, started_at, ended_at, dispatch_id: str | None
    ) -> tuple[EvidenceSegment, Path]:
        """Hash a finished recording into the chain and write its record; returns it and the renamed file."""
        with self._lock:
            return self._seal(video, started_at, ended_at, dispatch_id)

    def _seal(self, video: Path, started_at, ended_at, dispatch_id, ends_partial: bool = False):
        if self._intent.exists():  # an earlier seal failed half-way (a full card): finish it first
            self._finish_seal()
        index, prev = self.head()
        sha = chain.file_sha256(video)
        segment = EvidenceSegment(
            device=self.device,
            segment_id=ids.new_id(),
            index=index,
            started_at=started_at,
            ended_at=ended_at,
            size=video.stat().st_size,
            sha256=sha,
            prev_chain_sha256=prev,
            chain_sha256=chain.chain_hash(
                prev, sha, index, timeutil.to_wire(started_at), timeutil.to_wire(ended_at)
            ),
            content_type=CONTENT_TYPE,
            dispatch_id=dispatch_id,
        )
        ends_partial = ends_partial or video == self.partial
        intent = {"source": str(video), "ends_partial": ends_partial, "segment": segment.model_dump_json()}
        _write_atomic(self._intent, json.dumps(intent))
        return segment, self._finish_seal()

    def _finish_seal(self) -> Path:
        """Carry out ``sealing.json``; every step may already be done (a kill cut the last attempt short)."""
        intent = json.loads(self._intent.read_text())
        segment = EvidenceSegment.model_validate_json(intent["segment"])
        source, final = Path(intent["source"]), self.video(segment)
        if source.exists() and not final.exists():
            source.replace(final)
        _write_atomic(final.with_suffix(".json"), segment.model_dump_json())
        if self.head()[0] <= segment.index:
            _write_atomic(
                self._head_path, json.dumps({"index": segment.index, "chain_sha256": segment.chain_sha256})
            )
        if intent["ends_partial"]:
            self.discard()
        self._intent.unlink()
        return final

    def video(self, segment: EvidenceSegment) -> Path:
        return self.dir / f"{segment.index:06d}-{segment.segment_id}.avi"

    def records_after(self, index: int) -> list[tuple[EvidenceSegment, Path]]:
        """The sealed segments after ``index``, in order, each with where its recording is kept."""
        found = []
        for path in self.dir.glob("*.json"):
            number, dash, _ = path.stem.partition("-")
            if dash and number.isdigit() and int(number) > index:
                found.append((int(number), path))
        records = [EvidenceSegment.model_validate_json(path.read_text()) for _, path in sorted(found)]
        return [(segment, self.video(segment)) for segment in records]

    # --- after a kill -------------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """At start, before recording: finish a seal a kill interrupted and seal what the recording in
        progress left. Returns what the officer should be told."""
        with self._lock:
            if self._intent.exists():
                self._finish_seal()
            return self._recover_partial()

    def _recover_partial(self) -> list[str]:
        try:
            info = json.loads(self._partial_info.read_text())
        except (OSError, ValueError):
            info = {}
        if not self.partial.exists() or self.partial.stat().st_size == 0:
            self.discard()  # stopped before its first frame reached the disk: nothing was recorded
            return []
        # The file was last written when the recording stopped.
        ended_at = _to_ms(datetime.fromtimestamp(self.partial.stat().st_mtime, UTC))
        from kuzet.edge.evidence.readback import (
            copy_readable,  # PyAV, loaded only when there is something to read
        )

        frames, duration_s = copy_readable(self.partial, self._recovered)
        if "started_at" in info:
            started_at = timeutil.from_wire(info["started_at"])
        else:  # left by a badge that noted no start time: as long before its end as its frames last
            started_at = _to_ms(ended_at - timedelta(seconds=duration_s))
        started_at = max(started_at, self._last_ended_at() or started_at)
        ended_at = max(ended_at, started_at)
        source = self._recovered if frames else self.partial
        segment, _ = self._seal(source, started_at, ended_at, info.get("dispatch_id"), ends_partial=True)
        if frames:
            log.warning(
                "evidence: segment %d recovered after a stop mid-recording (%d frames)", segment.index, frames
            )
            return [f"recording interrupted at {timeutil.to_wire(ended_at)}: {frames} frames recovered"]
        self._recovered.unlink(missing_ok=True)
        log.error("evidence: segment %d sealed unreadable after a stop mid-recording", segment.index)
        return [f"recording interrupted at {timeutil.to_wire(ended_at)}: nothing could be read back"]

    def _last_ended_at(self) -> datetime | None:
        index, _ = self.head()
        last = self.records_after(index - 2)
        return last[-1][0].ended_at if last else None


class Recorder(Worker):
    """Writes camera frames into segments of ``segment_s`` seconds while recording is wanted."""

    thread_name = "evidence"
    join_timeout_s = 10.0

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
        super().__init__()
        self.recording = False

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
        writer: _SegmentWriter | None = None
        started_at = _now_ms()
        began = time.monotonic()
        frames, last_seq = 0, -1
        dispatch_id = self._dispatch_id()
        partial = self.store.begin(started_at, dispatch_id)
        failure: Exception | None = None
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
        except Exception as exc:  # a bad frame: what was recorded before it is sealed all the same
            failure = exc
        finally:
            if writer is not None:
                writer.close()
        if frames == 0:
            self.store.discard()
        else:
            segment, video = self.store.seal(partial, started_at, _now_ms(), dispatch_id)
            log.info("evidence: segment %d sealed (%d frames, %d bytes)", segment.index, frames, segment.size)
            self._on_segment(segment, video)
        if failure is not None:
            raise failure


class _SegmentWriter:
    """Motion-JPEG in AVI: every frame stands alone (a cut segment loses nothing), any player opens it, and the
    Pi's CPU encodes it at badge rates. Rate control aims at about one bit per pixel, JPEG quality ~75."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        import av

        # Every frame goes to the file as it is written: a kill loses at most the frame being written.
        self._container = av.open(str(path), mode="w", format="avi", options={"flush_packets": "1"})
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
