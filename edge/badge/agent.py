"""The smart-badge agent: reports where the officer is and their duty status, keeps the dispatch inbox,
raises panic, streams live on request and records and uploads chained body-camera evidence.

Everything the officer does goes through the public methods here (the terminal UI only calls them), so the
behaviour is the same from a key press, a test or a script. The link, delivery, availability, heartbeat,
central's commands and signed updates are the device runtime's (``edge.runtime``, shared with the street
camera); the badge registers its commands (``_register_commands``) and its status (``_status``).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from pathlib import Path

from kuzet.edge.badge import gps as gps_sources
from kuzet.edge.badge.camera import Camera
from kuzet.edge.badge.config import BadgeConfig
from kuzet.edge.badge.evidence import EvidenceStore, Recorder
from kuzet.edge.badge.handover import EvidenceHandover
from kuzet.edge.badge.inbox import Inbox, InboxError, Item
from kuzet.edge.badge.live import LiveStream
from kuzet.edge.badge.updates import BadgeUpdates, check_runnable
from kuzet.edge.delivery.outbox import PRIORITY_EVENT
from kuzet.edge.runtime import DeviceRuntime, Reply, UpdateCommands
from kuzet.shared import __version__, ids, timeutil
from kuzet.shared.messages import (
    Command,
    Dispatch,
    DispatchState,
    Envelope,
    Event,
    EvidenceSegment,
    Location,
    Status,
    from_base64,
)

log = logging.getLogger(__name__)

DUTY_CYCLE = ("available", "en_route", "on_scene", "busy", "off_duty")
# The duty status a dispatch step puts the officer in.
DUTY_FOR_STEP = {
    "acknowledged": "busy",
    "en_route": "en_route",
    "on_scene": "on_scene",
    "resolved": "available",
}
PANIC_RECORDING_S = 600.0  # after a panic the camera records this long whatever the evidence mode


class BadgeAgent:
    def __init__(
        self,
        config: BadgeConfig,
        position_source=None,
        camera: Camera | None = None,
        config_path: Path | None = None,
    ):
        # base_config is the file's; config, what runs: the file with the installed signed config update over it.
        self.base_config = config
        self.updates = BadgeUpdates(config.updates, config_path)
        config, update_notes = self.updates.effective(config)
        self.config = config
        self.device, self.site = config.device.id, config.device.site
        storage = Path(config.storage.dir)
        storage.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.inbox = Inbox(storage / "inbox.db")
        self._duty_path = storage / "duty"
        self.duty = (
            self._duty_path.read_text().strip() if self._duty_path.exists() else config.badge.initial_duty
        )
        self.gps = position_source
        self.camera = camera or _camera_for(config)
        self.evidence = EvidenceStore(storage / "evidence", self.device)
        # Panic, dispatch answers and evidence survive a lost link and a reboot: durable outbox, QoS 1.
        self.runtime = DeviceRuntime(
            kind="badge",
            site=self.site,
            device=self.device,
            mqtt=config.mqtt,
            storage=storage,
            spool_dir=storage / "evidence-spool",
            spool_limits={"max_bytes": int(config.storage.max_evidence_mb * 1024 * 1024)},
            status=self._status,
            heartbeat_s=lambda: self.config.badge.status_interval_s,
        )
        self.outbox, self.spool = self.runtime.outbox, self.runtime.spool
        self.link, self.publisher = self.runtime.link, self.runtime.publisher
        self.handover = EvidenceHandover(
            self.evidence, self.spool, self.publisher, self.runtime.topic("evidence")
        )
        self.live: LiveStream | None = None
        self.notices: deque[str] = deque(maxlen=8)
        for note in update_notes:
            self._notice(note)
        self.last_fix: gps_sources.Fix | None = None
        self._panic_until = 0.0
        self._report_now = threading.Event()  # a location report is due at once (duty changed, reconnected)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reconfigure = threading.Lock()  # a config update swaps the recorder, camera and GPS under it
        self.recorder: Recorder | None = None
        self.runtime.on_online.append(self._report_soon)  # a fresh position as soon as the link is back
        self.runtime.receivers[Dispatch] = self._on_dispatch
        self.runtime.commands.on_bad_message = lambda reason: self._notice(
            f"bad message from central ignored: {reason[:60]}"
        )
        self._register_commands()

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self, wait_s: float | None = 10.0) -> BadgeAgent:
        if self.gps is None:
            self.gps = gps_sources.open_source(self.config.gps)
        # What a killed predecessor left (a recording in progress, segments not yet queued) goes first. The
        # badge must run (dispatches, panic) even if that evidence cannot be mended.
        try:
            for note in self.handover.recover():
                self._notice(note)
        except Exception as exc:
            log.exception("badge: evidence left by the previous run could not be recovered")
            self._notice(f"EVIDENCE RECOVERY FAILED: {exc}")
        self.runtime.start(wait_s)
        thread = threading.Thread(target=self._report_loop, name="reporter", daemon=True)
        thread.start()
        self._threads.append(thread)
        self._start_recorder()
        return self

    def _start_recorder(self) -> None:
        if self.config.evidence.enabled:
            self.recorder = Recorder(
                self.camera,
                self.evidence,
                self.config.evidence,
                wanted=self._recording_wanted,
                dispatch_id=lambda: item.dispatch_id if (item := self.inbox.current()) else None,
                on_segment=self._segment_sealed,
            ).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.live is not None:
            self.live.stop()
        with self._reconfigure:  # not while a config update swaps the recorder
            if self.recorder is not None:
                self.recorder.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.gps.stop()
        self.runtime.stop(drain_s=2.0)
        self.inbox.close()

    # --- sending --------------------------------------------------------------------------------------

    def _deliver(self, kind: str, message: Envelope, priority: int) -> None:
        """Through the durable outbox: kept across a lost link or a reboot until the broker acknowledges it."""
        self.runtime.deliver(kind, message, priority)

    def _notice(self, text: str) -> None:
        self.notices.appendleft(f"{time.strftime('%H:%M:%S')} {text}")

    # --- duty and position ----------------------------------------------------------------------------

    def set_duty(self, duty: str) -> None:
        if duty not in DUTY_CYCLE:
            raise ValueError(f"unknown duty status {duty!r}")
        self.duty = duty
        self._duty_path.write_text(duty)
        self._report_soon()

    def _report_soon(self) -> None:
        self._report_now.set()
        self._wake.set()

    def cycle_duty(self) -> str:
        self.set_duty(DUTY_CYCLE[(DUTY_CYCLE.index(self.duty) + 1) % len(DUTY_CYCLE)])
        return self.duty

    def _location(self, fix: gps_sources.Fix | None) -> Location | None:
        known = fix or self.last_fix
        if known is None:
            return None
        return Location(
            device=self.device,
            position={"lat": known.lat, "lon": known.lon},
            accuracy_m=known.accuracy_m if fix else None,
            speed_mps=known.speed_mps if fix else None,
            heading_deg=known.heading_deg if fix else None,
            fix=fix.source if fix else "none",
            duty=self.duty,
        )

    def _report_loop(self) -> None:
        last_report = 0.0
        last_sent: gps_sources.Fix | None = None
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            now = time.monotonic()
            settings = self.config.gps  # a config update may change it
            try:
                fix = self.gps.current()
                if fix is not None:
                    self.last_fix = fix
                moved = (
                    fix is not None
                    and last_sent is not None
                    and gps_sources.distance_m(fix, last_sent) >= settings.min_movement_m
                )
                if self._report_now.is_set() or moved or now - last_report >= settings.report_interval_s:
                    location = self._location(fix)
                    if location is not None:
                        self._report_now.clear()
                        self.runtime.send_now("location", location, qos=1)
                        last_report, last_sent = now, fix or last_sent
            except Exception:  # a full paho queue or a disk hiccup must not end position reports
                log.exception("badge: location report failed; retrying")

    def _status(self) -> Status:
        return Status(
            device=self.device,
            kind="badge",
            software_version=__version__,
            uptime_s=self.runtime.uptime_s(),
            memory_rss_mb=rss_mb(),
            battery_pct=battery_pct(),
            disk_free_mb=shutil.disk_usage(self.storage).free / 1e6,
            outbox_depth=self.outbox.depth(),
            duty=self.duty,
            source_state=self.camera.error or ("recording" if self.recording else "idle"),
            # Segments sealed into the chain so far (its next index): central sees a deleted or lost tail.
            counters=self.runtime.counters({"evidence_sealed": self.evidence.head()[0]}),
        )

    # --- the dispatch inbox ---------------------------------------------------------------------------

    def target(self, dispatch_id: str | None) -> Item:
        item = self.inbox.get(dispatch_id) if dispatch_id else self.inbox.current()
        if item is None:
            raise InboxError("no open dispatch")
        return item

    def _step(
        self, state: str, dispatch_id: str | None, note: str | None = None, reason: str | None = None
    ) -> Item:
        item = self.inbox.advance(self.target(dispatch_id).dispatch_id, state, note=note, reason=reason)
        fix = self.gps.current() or self.last_fix
        self._deliver(
            "dispatch_state",
            DispatchState(
                device=self.device,
                dispatch_id=item.dispatch_id,
                state=state,
                note=note,
                reason=reason,
                position={"lat": fix.lat, "lon": fix.lon} if fix else None,
            ),
            PRIORITY_EVENT,
        )
        if state in DUTY_FOR_STEP:
            self.set_duty(DUTY_FOR_STEP[state])
        self._notice(f"{state.replace('_', ' ')}: {item.dispatch.event_type}")
        return item

    def acknowledge(self, dispatch_id: str | None = None) -> Item:
        return self._step("acknowledged", dispatch_id)

    def en_route(self, dispatch_id: str | None = None) -> Item:
        return self._step("en_route", dispatch_id)

    def on_scene(self, dispatch_id: str | None = None) -> Item:
        return self._step("on_scene", dispatch_id)

    def resolve(self, note: str, dispatch_id: str | None = None) -> Item:
        return self._step("resolved", dispatch_id, note=note.strip() or None)

    def decline(self, reason: str, dispatch_id: str | None = None) -> Item:
        return self._step("declined", dispatch_id, reason=reason.strip()[:200] or None)

    # --- panic ----------------------------------------------------------------------------------------

    def panic(self) -> str:
        """Raise a critical panic event with the officer's position; the camera starts recording."""
        fix = self.gps.current() or self.last_fix
        now = timeutil.utc_now()
        event = Event(
            device=self.device,
            event_id=ids.new_id(),
            seq=0,
            state="open",
            event_type="panic",
            severity="critical",
            label="officer panic",
            score=1.0,
            started_at=now,
            location={"lat": fix.lat, "lon": fix.lon} if fix else None,
            description=f"Panic button pressed on {self.config.device.name or self.device}",
        )
        self._deliver("event", event, PRIORITY_EVENT + 10)
        self._panic_until = time.monotonic() + PANIC_RECORDING_S
        self._notice("PANIC sent" + ("" if fix else " (no position)"))
        return event.event_id

    # --- messages from central ------------------------------------------------------------------------

    def _on_dispatch(self, message: Dispatch) -> None:
        if self.inbox.receive(message):
            self._notice(f"NEW DISPATCH: {message.severity} {message.event_type}")
            self._save_snapshot(message)

    def _save_snapshot(self, message: Dispatch) -> None:
        if message.snapshot:
            folder = self.storage / "snapshots"
            folder.mkdir(exist_ok=True)
            (folder / f"{message.dispatch_id}.jpg").write_bytes(from_base64(message.snapshot))

    def _register_commands(self) -> None:
        """What central can ask of a badge; the runtime queues, expires and answers them (``edge.runtime``)."""
        self.runtime.commands.register_all(
            {
                "live_start": self._live_start,
                "live_stop": self._live_stop,
                "cancel_dispatch": self._cancel_dispatch,
            }
        )
        UpdateCommands(self.updates, lambda: self.base_config, check_runnable, self._run_update).register(
            self.runtime.commands
        )

    def _live_start(self, command: Command) -> Reply:
        args = command.args
        stream = self.start_live(
            fps=_number(args.get("fps")),
            duration_s=_number(args.get("duration_s")),
            width=_number(args.get("width")),
        )
        data = {
            "stream_id": stream.stream_id,
            "fps": stream.fps,
            "duration_s": stream.duration_s,
            "width": stream.width,
        }
        return True, "", data

    def _live_stop(self, command: Command) -> Reply:
        self.stop_live()
        return True, "", {}

    def _cancel_dispatch(self, command: Command) -> Reply:
        reason = str(command.args.get("reason", ""))
        try:
            item = self.inbox.advance(str(command.args.get("dispatch_id", "")), "cancelled", reason=reason)
        except (InboxError, ValueError) as exc:
            return False, str(exc), {}
        # Central says why (an operator, a timeout that gave the task to another unit, a revocation).
        self._notice(f"CANCELLED by central: {item.dispatch.event_type}: {reason or 'no reason given'}")
        if self.inbox.current() is None and self.duty != "off_duty":
            self.set_duty("available")
        return True, "", {}

    # --- signed updates -------------------------------------------------------------------------------

    def _run_update(self, outcome, candidate) -> None:
        """After ``install_update`` or ``rollback_update`` (``edge.runtime.updates``): a checked configuration
        runs from now on; anything wrong and the badge runs what it ran."""
        if candidate is not None:
            self.apply_config(candidate.config)
        if outcome.ok:
            self._notice(f"configuration: {outcome.message}")

    def apply_config(self, new: BadgeConfig) -> None:
        """Run ``new`` from now on, without a restart: the inbox, duty, link, outbox and evidence chain stay.
        The recording in progress is sealed into the chain first when the camera or evidence settings change."""
        with self._reconfigure:
            old = self.config
            new = new.model_copy(update={s: getattr(old, s) for s in self.updates.fixed_sections})
            # First what may fail, before anything is changed.
            gps = gps_sources.open_source(new.gps) if new.gps != old.gps else None
            camera_changed = (new.camera, _camera_fps(new)) != (old.camera, _camera_fps(old))
            restart_recorder = camera_changed or new.evidence != old.evidence
            if restart_recorder and self.recorder is not None:
                self.recorder.stop()  # seals the segment it was recording
                self.recorder = None
            if camera_changed:
                self.stop_live()
            self.config = new
            if gps is not None:
                previous, self.gps = self.gps, gps
                previous.stop()
                self._report_now.set()
            if camera_changed:
                self.camera = _camera_for(new)
            if restart_recorder and not self._stop.is_set():
                self._start_recorder()
        self._wake.set()

    # --- live stream ----------------------------------------------------------------------------------

    def start_live(
        self, fps: float | None = None, duration_s: float | None = None, width: float | None = None
    ) -> LiveStream:
        self.stop_live()
        self.live = LiveStream(
            self.device,
            self.camera,
            self.config.live,
            send=lambda frame: self.runtime.send_now("live", frame),
            fps=fps,
            duration_s=duration_s,
            width=int(width) if width else None,
            on_stop=lambda stream: self._notice(f"live stream ended ({stream.sent_frames} frames)"),
        ).start()
        self._notice("LIVE: central is watching")
        return self.live

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # --- evidence -------------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.recorder is not None and self.recorder.recording

    def _recording_wanted(self) -> bool:
        if self.config.evidence.mode == "always" or time.monotonic() < self._panic_until:
            return True
        current = self.inbox.current()
        return current is not None and current.state != "new"

    def _segment_sealed(self, segment: EvidenceSegment, video: Path) -> None:
        self.handover.hand_over(segment, video, known_playable=True)

    # --- for the terminal UI --------------------------------------------------------------------------

    def view(self) -> dict:
        fix = self.gps.current() if self.gps else None
        return {
            "device": self.device,
            "duty": self.duty,
            "connected": self.link.connected.is_set(),
            "fix": fix,
            "last_fix": self.last_fix,
            "inbox": self.inbox.items(10),
            "current": self.inbox.current(),
            "notices": list(self.notices),
            "live": self.live is not None and self.live.running,
            "recording": self.recording,
            "outbox": self.outbox.depth(),
        }


def _camera_fps(config: BadgeConfig) -> float:
    """The camera delivers frames as fast as the faster of its users needs them."""
    return max(config.evidence.fps, config.live.fps)


def _camera_for(config: BadgeConfig) -> Camera:
    return Camera(config.camera.source, fps=_camera_fps(config), loop=config.camera.loop)


def _number(value) -> float | None:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
    )


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def battery_pct() -> float | None:
    for capacity in Path("/sys/class/power_supply").glob("*/capacity"):
        try:
            return float(capacity.read_text().strip())
        except (OSError, ValueError):
            continue
    return None
