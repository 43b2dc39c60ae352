"""The ids of the commands a device accepted lately, so that a copy of one is dropped, never carried out twice.

Copies come from MQTT itself: a QoS 1 re-delivery, or the same command from the site's other broker, where
central also sent it and the device's persistent session kept it (docs/brokers.md). The ids survive a restart:
they are kept in a small JSON file in the device's data folder, replaced whole (written, flushed to disk,
renamed over the old one) before the command is carried out, so that a crash leaves the old list or the new
one, and a command interrupted by a crash is not started again by its copy.

A command accepted but not yet answered is kept as open (its id, name and time) until its answer is in the
device's durable outbox: a device killed while carrying it out (or before starting it) finds it open when it
starts again, and answers it as interrupted (``interrupted``) instead of leaving central waiting for an answer
that never comes. It is not carried out again: the moment may have passed, and only a person knows whether
to send it anew.

Bounded twice: an id is forgotten once its command is older than ``max_age_s``, as a copy arriving later is
refused as expired anyway, and at most ``limit`` ids are kept, the earliest accepted going first. Open
commands are kept until answered, whatever their age.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kuzet.shared import timeutil
from kuzet.shared.messages import Command

log = logging.getLogger(__name__)

# Central sends a device a few commands a minute: far fewer than this arrive within a command's max age.
LIMIT = 1000


class AcceptedCommands:
    """``path`` None: kept in memory only (a registry without a data folder, in tests)."""

    def __init__(
        self,
        path: Path | None,
        max_age_s: float,
        limit: int = LIMIT,
        now: Callable[[], datetime] = timeutil.utc_now,
    ):
        self.path = path
        self.max_age_s = max_age_s
        self.limit = limit
        self._now = now
        self._lock = threading.Lock()
        # command id -> when central sent it (epoch seconds), in the order accepted
        self._sent_at: dict[str, float] = {}
        self._open: dict[str, dict] = {}  # command id -> its name, device, time: accepted, not yet answered
        self._load()
        self._interrupted = dict(self._open)  # open when the device started: the last run never answered them

    def first_time(self, command: Command) -> bool:
        """Remember ``command``'s id and say True; False if it was accepted before (the message is a copy)."""
        with self._lock:
            if command.command_id in self._sent_at:
                return False
            self._sent_at[command.command_id] = command.ts.timestamp()
            self._open[command.command_id] = {
                "name": command.name,
                "device": command.device,
                "ts": timeutil.to_wire(command.ts),
            }
            self._forget_old()
            self._save()
            return True

    def answered(self, command_id: str) -> None:
        """The command's answer is in the durable outbox: it is no longer open."""
        with self._lock:
            if self._open.pop(command_id, None) is not None:
                self._interrupted.pop(command_id, None)
                self._save()

    def interrupted(self) -> list[Command]:
        """The commands accepted before the device last stopped and never answered (as far as is needed to
        answer them: id, name, time)."""
        with self._lock:
            return [
                Command(
                    command_id=command_id,
                    name=kept["name"],
                    device=kept["device"],
                    ts=timeutil.from_wire(kept["ts"]),
                )
                for command_id, kept in self._interrupted.items()
            ]

    def _forget_old(self) -> None:
        # The registry's expiry rule (older than max_age_s when it arrives), so an id is never forgotten while a
        # copy of its command could still be carried out.
        oldest = self._now().timestamp() - self.max_age_s
        kept = {command_id: at for command_id, at in self._sent_at.items() if at >= oldest}
        self._sent_at = dict(list(kept.items())[-self.limit :])

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if "sent_at" not in loaded:  # as a version without open commands wrote it: {id: sent at}
                loaded = {"sent_at": loaded, "open": {}}
            self._sent_at = {str(command_id): float(at) for command_id, at in loaded["sent_at"].items()}
            self._open = {
                str(command_id): {key: str(kept[key]) for key in ("name", "device", "ts")}
                for command_id, kept in loaded["open"].items()
            }
        except (OSError, ValueError, AttributeError, TypeError, KeyError):
            # Not written by us (replaced whole, never half): start empty rather than refuse every command.
            log.exception("the accepted command ids in %s cannot be read; starting without them", self.path)
            self._sent_at, self._open = {}, {}
        self._forget_old()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"sent_at": self._sent_at, "open": self._open}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
        except OSError:  # a full disk must not stop commands: the ids are still kept in memory
            log.exception("the accepted command ids could not be written to %s", self.path)
