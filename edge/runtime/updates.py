"""The ``install_update`` and ``rollback_update`` commands, the same on every device: the device's
``DeviceUpdates`` (``edge.updates.device``) fetches, verifies, installs and checks a bundle; what it built is
then switched to by the device (``switch``), and the answer carries the outcome and the versions running now.

Both run in the ``updates`` lane of the command registry: a download never holds up a quick command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kuzet.edge.runtime.commands import CommandRegistry, Reply
from kuzet.edge.updates.device import Candidate, DeviceUpdates, Prepare
from kuzet.edge.updates.installer import InstallResult
from kuzet.shared.messages import Command

UPDATES_LANE = "updates"
# Runs what an update built (the candidate is None when nothing changes); sees the outcome too.
Switch = Callable[[InstallResult, Candidate | None], None]


class UpdateCommands:
    def __init__(self, updates: DeviceUpdates, base: Callable[[], Any], prepare: Prepare, switch: Switch):
        self.updates = updates
        self.base = base  # the device's configuration file as loaded now (updates apply over it)
        self.prepare = prepare
        self.switch = switch

    def register(self, registry: CommandRegistry, lane: str = UPDATES_LANE) -> None:
        registry.register_all({"install_update": self.install, "rollback_update": self.rollback}, lane)

    def install(self, command: Command) -> Reply:
        """A signed bundle (args ``url`` or ``path``): checked, installed, and run from now on."""
        return self._run(*self.updates.install(command.args, self.base(), self.prepare))

    def rollback(self, command: Command) -> Reply:
        """Back to the previous version of args ``kind``."""
        return self._run(*self.updates.rollback(command.args, self.base(), self.prepare))

    def _run(self, outcome: InstallResult, candidate: Candidate | None) -> Reply:
        self.switch(outcome, candidate)
        return outcome.ok, outcome.message, outcome.command_data() | self.updates.versions()
