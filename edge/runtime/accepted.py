"""The ids of the commands a device accepted lately, so that a copy of one is dropped, never carried out twice.

Copies come from MQTT itself: a QoS 1 re-delivery, or the same command from the site's other broker, where
central also sent it and the device's persistent session kept it (docs/brokers.md). The ids survive a restart:
they are kept in a small JSON file in the device's data folder, replaced whole (written, flushed to disk,
renamed over the old one) before the command is carried out, so that a crash leaves the old list or the new
one, and a command interrupted by a crash is not started again by its copy.

Bounded twice: an id is forgotten once its command is older than ``max_age_s``, as a copy arriving later is
refused as expired anyway, and at most ``limit`` ids are kept, the earliest accepted going first.
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
        self._load()

    def first_time(self, command: Command) -> bool:
        """Remember ``command``'s id and say True; False if it was accepted before (the message is a copy)."""
        with self._lock:
            if command.command_id in self._sent_at:
                return False
            self._sent_at[command.command_id] = command.ts.timestamp()
            self._forget_old()
            self._save()
            return True

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
            self._sent_at = {str(command_id): float(at) for command_id, at in loaded.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            # Not written by us (replaced whole, never half): start empty rather than refuse every command.
            log.exception("the accepted command ids in %s cannot be read; starting without them", self.path)
            self._sent_at = {}
        self._forget_old()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(self._sent_at, handle)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
        except OSError:  # a full disk must not stop commands: the ids are still kept in memory
            log.exception("the accepted command ids could not be written to %s", self.path)
