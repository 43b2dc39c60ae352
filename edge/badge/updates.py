"""The badge's side of signed updates (the generic part is ``edge.updates.device``): ``config`` updates only,
``badge.toml``, whose sections replace the configuration file's sections of the same name (gps, camera, live,
evidence, badge). ``[device]``, ``[mqtt]``, ``[storage]`` and ``[updates]`` stay the file's: an update cannot
give a badge another identity, broker, state (its inbox and evidence chain) or key.

Before a new configuration runs, ``check_runnable`` makes sure the badge can run it: its route file is a
route and its video file exists. The agent then applies it without a restart (``BadgeAgent.apply_config``).
"""

from __future__ import annotations

from pathlib import Path

from kuzet.edge.badge.camera import is_device
from kuzet.edge.badge.config import BadgeConfig
from kuzet.edge.badge.gps import load_route
from kuzet.edge.updates.device import DeviceUpdates, UpdateError


class BadgeUpdates(DeviceUpdates):
    device_kind = "badge"
    kinds = ("config",)
    config_class = BadgeConfig
    config_file = "badge.toml"
    fixed_sections = ("device", "mqtt", "storage", "updates")


def check_runnable(config: BadgeConfig) -> None:
    """Raise if the badge cannot run ``config`` (what a GPS module or a camera device says is learnt only by
    opening them: a missing one shows in the badge's status, as it would at start)."""
    if config.gps.source == "route":
        load_route(Path(config.gps.route_file))  # ValueError or OSError naming the file
    source = config.camera.source
    if not is_device(source) and not Path(source).is_file():
        raise UpdateError(
            f"[camera] source {source!r} is neither a camera device nor a video file on the badge"
        )
