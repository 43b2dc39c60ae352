"""The street camera agent: one way from the lens to central.

    source -> vision -> rules (events) -> evidence (snapshot, clip) -> outbox -> MQTT

The pipeline runs on the main thread, frame by frame. Beside it, the device runtime (``edge.runtime``, shared
with the badge): the outbox publisher (delivery), the heartbeat (availability and this camera's ``status``)
and the command threads (central's commands, from the table in ``_register_commands``, each answered with a
result). Everything a camera must deliver goes through the durable outbox first, so neither a broker outage
nor a SIGKILL loses an event; its state lives under ``[storage] dir``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kuzet.edge.camera import health
from kuzet.edge.camera.config import CameraConfig
from kuzet.edge.camera.config import load as load_config
from kuzet.edge.camera.live import LiveStream
from kuzet.edge.camera.updates import CameraUpdates
from kuzet.edge.delivery import PRIORITY_EVENT, PRIORITY_SNAPSHOT, DeliverySettings
from kuzet.edge.events.engine import EventChange, EventEngine
from kuzet.edge.events.journal import OpenEventJournal
from kuzet.edge.evidence.clips import ClipRecorder, ClipSettings, Recording, finalise_partial
from kuzet.edge.evidence.snapshot import snapshot
from kuzet.edge.runtime import DeviceRuntime, Reply, UpdateCommands
from kuzet.edge.vision.pipeline import VisionPipeline
from kuzet.edge.vision.sources import open_source
from kuzet.edge.vision.types import Frame, FrameResult
from kuzet.shared import __version__, ids, messages, timeutil
from kuzet.shared.config import ConfigError
from kuzet.shared.messages import (
    SEVERITY_RANK,
    Command,
    Event,
    GeoPoint,
    ModelInfo,
    Snapshot,
    Status,
    WatchlistPush,
)

log = logging.getLogger(__name__)

EVENTS_CREATED = "events_created"  # the counter reliability tests compare with central's store
WATCHLIST_MATCHES = "watchlist_matches"
CLIPS_CREATED = "clips_created"  # counted when a clip starts (its event names it), not when it is finished
BETTER_SNAPSHOT = 0.05  # a frame this much more confident than the snapshot sent earns a new snapshot
# Sections a running agent cannot swap (identity, broker, state, update key): a reload reports them as
# needing a restart.
RESTART_SECTIONS = ("device", "mqtt", "storage", "outbox", "updates")


class CameraAgent:
    def __init__(self, config: CameraConfig, config_path: Path | None = None):
        self.config_path = Path(config_path) if config_path else None
        # base_config is the file's; config, what runs: the file with the installed signed updates over it.
        self.base_config = config
        self.updates = CameraUpdates(config.updates, self.config_path)
        config, _ = self.updates.effective(config)
        self.config = config
        self.site, self.device = config.device.site, config.device.id
        self.storage = Path(config.storage.dir)
        self.storage.mkdir(parents=True, exist_ok=True)

        self.runtime = DeviceRuntime(
            kind="camera",
            site=self.site,
            device=self.device,
            mqtt=config.mqtt,
            storage=self.storage,
            spool_dir=self.storage / "clips",
            spool_limits={
                "max_bytes": int(config.outbox.clip_quota_mb * 1_000_000),
                "min_free_bytes": int(config.outbox.min_free_mb * 1_000_000),
                "keep_delivered_s": config.outbox.keep_delivered_clips_s,
            },
            status=self.status,
            heartbeat_s=lambda: self.config.health.heartbeat_s,
            delivery=DeliverySettings(
                max_inflight=config.outbox.max_inflight,
                backlog_per_s=config.outbox.backlog_per_s,
                max_bytes_per_s=config.outbox.max_kbytes_per_s * 1000,
                resend_after_s=config.outbox.resend_after_s,
            ),
        )
        self.outbox, self.spool = self.runtime.outbox, self.runtime.spool
        self.link, self.publisher = self.runtime.link, self.runtime.publisher
        self.runtime.housekeeping.append(self.spool.enforce_quota)
        self.runtime.receivers[WatchlistPush] = self._on_watchlist
        self.journal = OpenEventJournal(self.outbox)
        self.meter = health.PipelineMeter()
        self.live = LiveStream(config.live, self.device, lambda frame: self.runtime.send_now("live", frame))

        self._stop = threading.Event()
        self._lock = threading.RLock()  # the pipeline's state, shared by frames and commands
        self._register_commands()
        self._restart_source = False
        self._frame_errors = 0
        self.source = None
        self.last_result: FrameResult | None = None
        self.clip_of: dict[str, str] = {}  # open event -> its clip
        self.snapshot_of: dict[str, tuple[str, float]] = {}  # open event -> (sha256, score) of its snapshot

        self.pipeline = VisionPipeline.from_config(config.motion, config.detector, config.tracker)
        self.faces = self.watchlist = None
        self._start_faces(config)
        self._build_events(config)

    def _start_faces(self, config: CameraConfig) -> None:
        """The face watch and its watchlist keeper when [faces] is on (models load, the sealed list is read)."""
        self.faces = self.watchlist = None
        if not config.faces.enabled:
            return
        from kuzet.edge.faces.keeper import keeper_for
        from kuzet.edge.faces.watch import FaceWatch

        tls = config.mqtt.tls
        device_key = config.faces.key_file or (tls.key if tls is not None else None)
        self.faces = FaceWatch(config.faces)
        self.watchlist = keeper_for(
            self.storage, device_key, self.device, self.faces, config.faces.watchlist_key
        )

    def _on_watchlist(self, message: WatchlistPush) -> None:
        """The site's watchlist, or a wipe, from central (on paho's thread: a verification and a small write)."""
        from kuzet.edge.faces.keeper import SEALED

        if self.watchlist is not None:
            self.watchlist.receive(message)
        elif message.bundle is None:  # faces off now: a copy sealed while it was on goes all the same
            (self.storage / SEALED).unlink(missing_ok=True)
        else:
            log.warning("a watchlist came from central, but face matching is off here ([faces] enabled)")

    def _build_events(self, config: CameraConfig) -> None:
        location = None
        if config.device.lat is not None and config.device.lon is not None:
            location = GeoPoint(lat=config.device.lat, lon=config.device.lon)
        self.engine = EventEngine(
            self.device,
            config.zones,
            config.lines,
            config.rules,
            location=location,
            update_interval_s=config.events.update_interval_s,
            ground=config.ground,
        )
        self.recorder = None
        if config.evidence.clips:
            self.recorder = ClipRecorder(
                self.storage / "recording",
                self._clip_settings(),
                self._clip_finished,
                on_empty=self._clip_empty,
            )

    def _clip_settings(self) -> ClipSettings:
        evidence = self.config.evidence
        return ClipSettings(
            fps=evidence.clip_fps,
            pre_roll_s=evidence.pre_roll_s,
            post_roll_s=evidence.post_roll_s,
            max_duration_s=evidence.max_clip_s,
            max_bytes=int(evidence.max_clip_mb * 1_000_000),
            max_width=evidence.clip_max_width,
            codec=evidence.clip_codec,
        )

    # --- running ----------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (SIGTERM/SIGINT via ``stop``) or until a non-looping file source ends."""
        self._close_leftover_events()
        self._recover_clips()  # before the heartbeat's quota check can touch the spool
        self.runtime.start(wait_s=None)
        log.info("camera %s/%s running; state in %s", self.site, self.device, self.storage)
        try:
            while not self._stop.is_set():
                self._restart_source = False
                self.source = open_source(self.config.source)
                for frame in self.source:
                    if self._stop.is_set():
                        break
                    try:
                        self.process(frame)
                    except Exception:  # one frame that breaks a stage must not stop the camera
                        self._frame_errors += 1
                        if self._frame_errors <= 10 or self._frame_errors % 1000 == 0:
                            log.exception(
                                "frame %d could not be processed (%d so far)", frame.index, self._frame_errors
                            )
                if not self._restart_source:
                    break  # the source ended (a file played once) or we are stopping
        finally:
            self._shutdown()
        return 0

    def stop(self) -> None:
        """Ask the agent to finish (safe from a signal handler)."""
        self._stop.set()
        if self.source is not None:
            self.source.close()

    def process(self, frame: Frame) -> None:
        with self._lock:
            self.meter.frame_in()
            result = self.pipeline.process(frame)
            self.meter.processed(result.detector_ms, result.motion_share)
            self.last_result = result
            changes = self.engine.process(result)
            self._emit(changes)
            if self.faces is not None:
                for match in self.faces.process(result):
                    self._queue_match(match, result.tracks)
            if self.recorder is not None:
                self.recorder.feed(frame)
        self.live.offer(frame)

    def _shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            if self.last_result is not None:
                self._emit(self.engine.close_all(self.last_result.frame))
            if self.recorder is not None:
                self.recorder.close()
            if self.faces is not None:
                self.faces.forget()
        # A file that ended: give the outbox a while to deliver; what is left stays on disk for next time.
        self.runtime.drain(30.0)
        self.runtime.stop(drain_s=2.0)
        log.info("camera %s stopped", self.device)

    # --- events and evidence ------------------------------------------------------------------------------------

    def _emit(self, changes: list[EventChange]) -> None:
        for change in changes:
            event = change.event
            extra: dict = {}
            snap: Snapshot | None = None
            previous = self.snapshot_of.get(event.event_id)
            if self.config.evidence.snapshots and (
                previous is None or (change.improved and event.score >= previous[1] + BETTER_SNAPSHOT)
            ):
                snap = self._snapshot(event, change)
                self.snapshot_of[event.event_id] = (snap.sha256, event.score)
            if event.event_id in self.snapshot_of:
                extra["snapshot_sha256"] = self.snapshot_of[event.event_id][0]
            started: Recording | None = None
            if event.state == "open":
                recording = self._attach_clip(event, change.frame)
                extra["clip_id"] = recording.clip_id if recording is not None else None
                if recording is not None and recording.event_id == event.event_id:
                    started = recording  # this event started the clip (others join it)
            else:
                extra["clip_id"] = self.clip_of.get(event.event_id)
            event = event.model_copy(update=extra)
            if event.state == "closed":
                self.clip_of.pop(event.event_id, None)
                self.snapshot_of.pop(event.event_id, None)
                if self.recorder is not None:
                    self.recorder.detach(event.event_id, change.frame)
            self._queue_event(event, snap, started)

    def _queue_event(self, event: Event, snap: Snapshot | None, started: Recording | None) -> None:
        """One transaction: the event's message (and snapshot), its journal entry, and for a new clip the promise
        to deliver it; each with its counter. A SIGKILL leaves all of them or none."""
        with self.runtime.transaction() as tx:
            self.runtime.put(tx, "event", event, PRIORITY_EVENT)
            if event.state == "open":
                tx.count(EVENTS_CREATED)
            self.journal.record(tx, event)
            if snap is not None:
                self.runtime.put(tx, "snapshot", snap, PRIORITY_SNAPSHOT)
            if started is not None:
                self.spool.promise(tx, started.clip_id, recording=started.path, event_id=started.event_id)
                tx.count(CLIPS_CREATED)

    def _queue_match(self, match, tracks) -> None:
        """A watchlist match: its event (opened and closed), the scene and the face crop, in one transaction."""
        from kuzet.edge.faces.report import direction_deg, match_messages

        ground = self.config.ground.plane() if self.config.ground is not None else None
        events, snaps = match_messages(
            self.device,
            match,
            self._stamp_now(),
            self.engine.location,
            self.config.evidence.snapshot_quality,
            direction_deg(match, tracks, ground),
        )
        with self.runtime.transaction() as tx:
            for snap in snaps:
                self.runtime.put(tx, "snapshot", snap, PRIORITY_SNAPSHOT)
            for event in events:
                self.runtime.put(tx, "event", event, PRIORITY_EVENT)
            tx.count(WATCHLIST_MATCHES)

    def _attach_clip(self, event: Event, frame: Frame) -> Recording | None:
        if self.recorder is None:
            return None
        if SEVERITY_RANK[event.severity] < SEVERITY_RANK[self.config.evidence.clip_min_severity]:
            return None
        recording = self.recorder.attach(event.event_id, frame)
        self.clip_of[event.event_id] = recording.clip_id
        return recording

    def _stamp_now(self) -> datetime:
        """Now, in the zone snapshots are stamped in (messages still carry it as UTC)."""
        return timeutil.utc_now().astimezone(ZoneInfo(self.config.evidence.stamp_timezone))

    def _snapshot(self, event: Event, change: EventChange) -> Snapshot:
        captions = [(box, f"{label} {event.score:.2f}") for box, label in change.boxes]
        data, width, height = snapshot(
            (change.snapshot or change.frame).image,
            captions,
            self._stamp_now(),
            self.config.evidence.snapshot_quality,
        )
        return Snapshot(
            device=self.device,
            event_id=event.event_id,
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
            data=messages.to_base64(data),
        )

    def _clip_finished(self, path: Path, clip_id: str, event_id: str) -> None:
        try:
            self.spool.add(path, clip_id=clip_id, event_id=event_id)
        except (OSError, ValueError) as exc:
            self.spool.lost(clip_id, "failed", f"could not be stored: {exc}", event_id=event_id)
        self.publisher.wake()

    def _clip_empty(self, clip_id: str, event_id: str) -> None:
        self.spool.lost(clip_id, "failed", "the clip ended before a frame was recorded", event_id=event_id)
        self.publisher.wake()

    def _close_leftover_events(self) -> None:
        """Events a killed predecessor left open are closed now, so central does not show them open forever."""
        for closing in self.journal.closing_messages():
            with self.runtime.transaction() as tx:
                self.runtime.put(tx, "event", closing, PRIORITY_EVENT)
                self.journal.record(tx, closing)
            log.info("closed event %s left open by the previous run", closing.event_id)

    def _recover_clips(self) -> None:
        """Clips a killed predecessor promised (their events went out naming them) but never queued: each is
        queued now, recovered from its partial file, or reported lost, so central never waits for one in vain."""
        for promise in self.spool.promises():
            if self.spool.resume(promise.clip_id):  # killed after moving it into the spool
                continue
            recovered = None
            if promise.recording.exists():
                try:
                    recovered = finalise_partial(promise.recording)
                except Exception:  # an unreadable file must not stop the camera: it is reported lost below
                    log.exception("clip %s: the partial recording could not be read", promise.clip_id)
            if recovered is None:
                self.spool.lost(
                    promise.clip_id,
                    "interrupted",
                    "the camera agent stopped while recording and the partial file could not be read",
                    event_id=promise.event_id,
                )
                continue
            try:
                self.spool.add(recovered, clip_id=promise.clip_id, event_id=promise.event_id)
                self.outbox.add("clips_recovered")
                log.info("clip %s recovered after the agent was stopped mid-recording", promise.clip_id)
            except (OSError, ValueError) as exc:
                self.spool.lost(
                    promise.clip_id, "failed", f"recovered but not stored: {exc}", event_id=promise.event_id
                )
        # What is left in the recording folder belongs to no promise (killed before its event was queued).
        for leftover in (self.storage / "recording").glob("*"):
            if leftover.is_file():
                leftover.unlink()
        self.publisher.wake()

    # --- commands ------------------------------------------------------------------------------------------------

    def _register_commands(self) -> None:
        """What central can ask of a camera; the runtime queues, expires and answers them (``edge.runtime``).
        Commands that change the configuration share the ``updates`` lane: they run one at a time."""
        self.runtime.commands.register_all(
            {
                "snapshot": lambda command: self._manual_snapshot(),
                "live_start": self._live_start,
                "live_stop": lambda command: (
                    True,
                    "live stream stopped" if self.live.stop() else "no live stream was on",
                    {},
                ),
                "detection_on": lambda command: self._detection(True),
                "detection_off": lambda command: self._detection(False),
            }
        )
        self.runtime.commands.register("reload_config", lambda command: self._reload(), lane="updates")
        UpdateCommands(
            self.updates, lambda: self.base_config, self._prepare_pipeline, self._run_update
        ).register(self.runtime.commands)

    def _live_start(self, command: Command) -> Reply:
        args = command.args
        granted = self.live.start(args.get("fps"), args.get("duration_s"), args.get("width"))
        return True, f"live stream for {granted['duration_s']:.0f} s at {granted['fps']:g} fps", granted

    def _detection(self, on: bool) -> Reply:
        with self._lock:
            self.pipeline.enabled = on
            if not on and self.faces is not None:
                self.faces.forget()
            if not on and self.last_result is not None:
                self._emit(self.engine.close_all(self.last_result.frame))
        return True, f"detection {'on' if on else 'off'}", {"detection_enabled": on}

    def _reload(self) -> tuple[bool, str, dict]:
        if self.config_path is None:
            return False, "this camera was not started from a configuration file", {}
        try:
            base = load_config(self.config_path)
        except ConfigError as exc:
            return False, f"configuration not reloaded, the old one stays: {exc}", {}
        new, notes = self.updates.effective(base)
        try:
            pipeline = self._prepare_pipeline(new)
        except Exception as exc:  # a missing model: keep running with the old pipeline
            return False, f"configuration not reloaded, the detector cannot start: {exc}", {}
        self.base_config = base
        ok, text, data = self._switch_config(new, pipeline)
        return ok, "; ".join([text, *notes]), data

    def _prepare_pipeline(self, new: CameraConfig) -> VisionPipeline | None:
        """The vision pipeline ``new`` needs, built (the model loaded) before anything is switched; None when the
        running one will do. Raises when it cannot be built."""
        old = self.config
        if (new.motion, new.detector, new.tracker) == (old.motion, old.detector, old.tracker):
            return None
        return VisionPipeline.from_config(new.motion, new.detector, new.tracker)

    def _switch_config(self, new: CameraConfig, pipeline: VisionPipeline | None) -> tuple[bool, str, dict]:
        """Run ``new`` from the next frame on, with ``pipeline`` from ``_prepare_pipeline``."""
        old = self.config
        needs_restart = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(old, s)]
        with self._lock:
            if pipeline is not None:
                pipeline.enabled = self.pipeline.enabled
                self.pipeline = pipeline
            if new.faces != old.faces:
                self._start_faces(new)
            if self.last_result is not None:
                self._emit(self.engine.close_all(self.last_result.frame))
            if self.recorder is not None:
                self.recorder.close()
            self.config = new.model_copy(update={s: getattr(old, s) for s in RESTART_SECTIONS})
            self._build_events(self.config)
            self.live.settings = self.config.live
            if new.source != old.source:
                self._restart_source = True
                if self.source is not None:
                    self.source.close()
        text = f"configuration reloaded: {len(new.zones)} zone(s), {len(new.lines)} line(s), {len(new.rules)} rule(s)"
        if needs_restart:
            text += f"; [{'], ['.join(needs_restart)}] changed and need a restart"
        return True, text, {"restart_needed": bool(needs_restart)}

    def _manual_snapshot(self) -> tuple[bool, str, dict]:
        """A snapshot on demand travels as a short 'manual' event, so it has a place in the event list."""
        with self._lock:
            result = self.last_result
            if result is None:
                return False, "no frame yet: the source has not delivered one", {}
            now = timeutil.utc_now()
            opened = Event(
                device=self.device,
                event_id=ids.new_id(),
                seq=0,
                state="open",
                event_type="manual",
                severity="info",
                label="snapshot",
                score=1.0,
                started_at=now,
                track_ids=[t.track_id for t in result.tracks][:100],
                frame_size=(result.frame.image.shape[1], result.frame.image.shape[0]),
                location=self.engine.location,
                description="snapshot requested by central",
            )
            boxes = [(t.box, t.label) for t in result.tracks]
            change = EventChange(opened, result.frame, boxes=boxes)
            closed = opened.model_copy(
                update={"id": ids.new_id(), "seq": 1, "state": "closed", "ended_at": now}
            )
            self._emit([change, EventChange(closed, result.frame)])
        return True, "snapshot taken", {"event_id": opened.event_id}

    def _run_update(self, outcome, candidate) -> None:
        if candidate is not None:
            self._switch_config(candidate.config, candidate.prepared)

    # --- health --------------------------------------------------------------------------------------------------

    def status(self) -> Status:
        figures = self.meter.take()
        name, sha256 = self.pipeline.model_info
        counters = (
            {f"source_{k}": v for k, v in self.source.counters.items()} if self.source is not None else {}
        )
        counters["frame_errors"] = self._frame_errors
        if self.faces is not None:
            counters.update(self.faces.counters)  # faces seen, embedded, matched: never what they were
        return Status(
            device=self.device,
            kind="camera",
            software_version=__version__,
            uptime_s=self.runtime.uptime_s(),
            outbox_depth=self.outbox.depth(),
            disk_free_mb=health.disk_free_mb(self.storage),
            cpu_temp_c=health.cpu_temperature_c(),
            memory_rss_mb=health.memory_rss_mb(),
            model=ModelInfo(name=name, sha256=sha256),
            source_state=self.source.state if self.source is not None else "starting",
            detection_enabled=self.pipeline.enabled,
            watchlist=self.watchlist.state() if self.watchlist is not None else None,
            counters=self.runtime.counters(counters),
            **figures,
        )
