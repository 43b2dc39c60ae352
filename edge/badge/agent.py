"""The smart-badge agent: reports where the officer is and their duty status, keeps the dispatch inbox,
raises panic, streams live on request and records and uploads chained body-camera evidence.

Everything the officer does goes through the public methods here (the terminal UI only calls them), so the
behaviour is the same from a key press, a test or a script. Central's commands are answered on paho's thread,
except signed updates (``install_update``, ``rollback_update``), which download and check a bundle and so run
on a thread of their own, one at a time.
"""

from __future__ import annotations

import json
import logging
import queue
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
from kuzet.edge.delivery.clips import ClipSpool
from kuzet.edge.delivery.outbox import PRIORITY_EVENT, PRIORITY_RESULT, Outbox
from kuzet.edge.delivery.publisher import Publisher
from kuzet.shared import __version__, ids, timeutil, topics
from kuzet.shared.messages import (
    Availability,
    ClipRequest,
    Command,
    Dispatch,
    DispatchState,
    Envelope,
    Event,
    EvidenceSegment,
    InvalidMessage,
    Location,
    Status,
    decode,
    encode,
    from_base64,
)
from kuzet.shared.mqtt import Link

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
UPDATE_COMMANDS = ("install_update", "rollback_update")


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
        self.link = Link(
            config.mqtt,
            client_id=self.device,
            will=(self._topic("availability"), self._availability("offline")),
            persistent_session=True,  # dispatches sent while the badge is out of coverage wait at the broker
        )
        # Panic, dispatch answers and evidence survive a lost link and a reboot: durable outbox, QoS 1.
        self.outbox = Outbox(storage / "outbox.db")
        self.spool = ClipSpool(
            storage / "evidence-spool",
            self.outbox,
            site=self.site,
            device=self.device,
            max_bytes=int(config.storage.max_evidence_mb * 1024 * 1024),
        )
        self.publisher = Publisher(self.outbox, self.link, resolvers={"clip": self.spool.chunk_payload})
        self.handover = EvidenceHandover(self.evidence, self.spool, self.publisher, self._topic("evidence"))
        self.live: LiveStream | None = None
        self.notices: deque[str] = deque(maxlen=8)
        for note in update_notes:
            self._notice(note)
        self.last_fix: gps_sources.Fix | None = None
        self._started = time.monotonic()
        self._panic_until = 0.0
        self._report_now = threading.Event()  # a location report is due at once (duty changed, reconnected)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._update_commands: queue.Queue[Command] = queue.Queue(maxsize=5)
        self._reconfigure = threading.Lock()  # a config update swaps the recorder, camera and GPS under it
        self.recorder: Recorder | None = None

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
        self.link.subscribe(topics.device_down(self.site, self.device), self._on_down)
        self.publisher.start()
        self.link.start(wait_s)
        for target, name in ((self._report_loop, "reporter"), (self._update_loop, "updates")):
            thread = threading.Thread(target=target, name=name, daemon=True)
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
        self.publisher.stop(drain_s=2.0)
        self.link.stop(final=(self._topic("availability"), self._availability("offline")))
        self.outbox.close()
        self.inbox.close()

    # --- sending --------------------------------------------------------------------------------------

    def _topic(self, kind: str) -> str:
        return topics.up(self.site, self.device, kind)

    def _availability(self, state: str) -> bytes:
        return encode(Availability(device=self.device, state=state))

    def _send(self, kind: str, message: Envelope, qos: int = 1) -> None:
        """Straight to MQTT, and only while connected: for what is worthless when late (position, status,
        live frames). A fresh position is reported as soon as the link is back."""
        if self.link.connected.is_set():
            self.link.publish(self._topic(kind), encode(message), qos=qos)

    def _deliver(self, kind: str, message: Envelope, priority: int) -> None:
        """Through the durable outbox: kept across a lost link or a reboot until the broker acknowledges it."""
        self.publisher.enqueue(self._topic(kind), encode(message), kind=kind, priority=priority)

    def _notice(self, text: str) -> None:
        self.notices.appendleft(f"{time.strftime('%H:%M:%S')} {text}")

    # --- duty and position ----------------------------------------------------------------------------

    def set_duty(self, duty: str) -> None:
        if duty not in DUTY_CYCLE:
            raise ValueError(f"unknown duty status {duty!r}")
        self.duty = duty
        self._duty_path.write_text(duty)
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
        last_report = last_status = 0.0
        last_sent: gps_sources.Fix | None = None
        was_connected = False
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            now = time.monotonic()
            settings = self.config.gps  # a config update may change it
            try:
                connected = self.link.connected.is_set()
                if connected and not was_connected:
                    # The broker may have published our last will while we were away: say we are back.
                    self.link.publish(self._topic("availability"), self._availability("online"), retain=True)
                    self._report_now.set()
                    last_status = 0.0
                was_connected = connected
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
                        self._send("location", location)
                        last_report, last_sent = now, fix or last_sent
                if now - last_status >= self.config.badge.status_interval_s:
                    last_status = now
                    self._send("status", self._status(), qos=0)
            except Exception:  # a full paho queue or a disk hiccup must not end position reports
                log.exception("badge: location/status report failed; retrying")

    def _status(self) -> Status:
        return Status(
            device=self.device,
            kind="badge",
            software_version=__version__,
            uptime_s=time.monotonic() - self._started,
            memory_rss_mb=rss_mb(),
            battery_pct=battery_pct(),
            disk_free_mb=shutil.disk_usage(self.storage).free / 1e6,
            outbox_depth=self.outbox.depth(),
            duty=self.duty,
            source_state=self.camera.error or ("recording" if self.recording else "idle"),
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

    def _on_down(self, topic: str, payload: bytes) -> None:
        try:
            message = decode(topic, payload)
        except InvalidMessage as exc:
            log.warning("badge: ignoring a bad message on %s: %s", topic, exc.reason)
            self._notice(f"bad message from central ignored: {exc.reason[:60]}")
            self._keep_rejected(topic, payload, exc.reason)
            return
        if isinstance(message, Dispatch):
            if self.inbox.receive(message):
                self._notice(f"NEW DISPATCH: {message.severity} {message.event_type}")
                self._save_snapshot(message)
        elif isinstance(message, Command) and message.name in UPDATE_COMMANDS:
            try:
                self._update_commands.put_nowait(message)
            except queue.Full:
                self._answer(message, False, "busy: other updates are waiting; send it again later")
        elif isinstance(message, Command):
            self._on_command(message)
        elif isinstance(message, ClipRequest):
            self.spool.handle_request(message)

    def _keep_rejected(self, topic: str, payload: bytes, reason: str) -> None:
        """Kept for a technician to inspect (bounded: the first 4 KiB of each, the last 1 MiB of them)."""
        path = self.storage / "rejected.jsonl"
        if path.exists() and path.stat().st_size > 1 << 20:
            path.replace(path.with_suffix(".jsonl.old"))
        record = {"at": timeutil.now_wire(), "topic": topic, "reason": reason, "size": len(payload)}
        record["payload"] = payload[:4096].decode("utf-8", errors="replace")
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _save_snapshot(self, message: Dispatch) -> None:
        if message.snapshot:
            folder = self.storage / "snapshots"
            folder.mkdir(exist_ok=True)
            (folder / f"{message.dispatch_id}.jpg").write_bytes(from_base64(message.snapshot))

    def _on_command(self, command: Command) -> None:
        ok, text, data = True, "", {}
        try:
            if command.name == "live_start":
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
            elif command.name == "live_stop":
                self.stop_live()
            elif command.name == "cancel_dispatch":
                reason = str(command.args.get("reason", ""))
                item = self.inbox.advance(
                    str(command.args.get("dispatch_id", "")), "cancelled", reason=reason
                )
                # Central says why (an operator, a timeout that gave the task to another unit, a revocation).
                self._notice(
                    f"CANCELLED by central: {item.dispatch.event_type}: {reason or 'no reason given'}"
                )
                if self.inbox.current() is None and self.duty != "off_duty":
                    self.set_duty("available")
            else:
                ok, text = False, f"a badge does not do {command.name}"
        except (InboxError, ValueError) as exc:
            ok, text = False, str(exc)
        self._answer(command, ok, text, data)

    def _answer(self, command: Command, ok: bool, text: str, data: dict | None = None) -> None:
        result = command.answer(self.device, ok, text, data)
        self._deliver("command_result", result, PRIORITY_RESULT)

    # --- signed updates -------------------------------------------------------------------------------

    def _update_loop(self) -> None:
        while not self._stop.is_set():
            try:
                command = self._update_commands.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._run_update(command)
            except Exception as exc:  # whatever goes wrong, the badge keeps running and central is told
                log.exception("badge: %s failed", command.name)
                self._answer(command, False, f"{command.name} failed: {exc}")

    def _run_update(self, command: Command) -> None:
        """``install_update`` (args ``url`` or ``path``) or ``rollback_update`` (args ``kind``): a signed config
        bundle checked, installed and run from now on; anything wrong and the badge runs what it ran."""
        act = self.updates.install if command.name == "install_update" else self.updates.rollback
        outcome, candidate = act(command.args, self.base_config, check_runnable)
        if candidate is not None:
            self.apply_config(candidate.config)
        if outcome.ok:
            self._notice(f"configuration: {outcome.message}")
        data = outcome.command_data() | self.updates.versions()
        self._answer(command, outcome.ok, outcome.message, data)

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
            send=lambda frame: self._send("live", frame, qos=0),
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
