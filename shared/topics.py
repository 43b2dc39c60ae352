"""The MQTT topic tree.

Every topic is ``kuzet/v1/{site}/{device}/{direction}/{kind}``:

- ``up`` topics are written by the device named in the topic and read by central;
- ``down`` topics are written by central and read by that device alone.

Putting the direction after the device id is what lets one broker ACL pattern give each device least
privilege: ``pattern write kuzet/v1/+/%u/up/#`` and ``pattern read kuzet/v1/+/%u/down/#``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "kuzet/v1"
NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
_NAME = re.compile(rf"^{NAME_PATTERN}$")

UP_KINDS = (
    "event",
    "snapshot",
    "clip",
    "clip_lost",
    "status",
    "availability",
    "location",
    "dispatch_state",
    "command_result",
    "live",
    "evidence",
)
DOWN_KINDS = ("dispatch", "command", "clip_request", "resend", "watchlist")
# Names of programs, not devices: central, the technician's tool. No device may take one (provisioning refuses
# it, the broker's ACL gives them no up topics), and central refuses anything sent under one.
RESERVED_NAMES = frozenset({"central", "provision-tool", "broker", "admin", "root"})
# Central's workers (``kuzet provision site-init --central-worker NAME``) are ``central-<NAME>``: the whole prefix
# is theirs, so that a worker added later can never find a device already holding its name.
WORKER_PREFIX = "central-"


class TopicError(ValueError):
    pass


@dataclass(frozen=True)
class Topic:
    site: str
    device: str
    direction: str
    kind: str

    def __str__(self) -> str:
        return f"{ROOT}/{self.site}/{self.device}/{self.direction}/{self.kind}"


def check_name(what: str, value: str) -> str:
    if not _NAME.match(value or ""):
        raise TopicError(
            f"{what} {value!r} is not a valid name: use 1-63 lower-case letters, digits and '-', "
            "starting with a letter or digit"
        )
    return value


def is_reserved(name: str) -> bool:
    """A program's identity (central, one of its workers, the technician's tool...), never a device's."""
    return name in RESERVED_NAMES or name.startswith(WORKER_PREFIX)


def check_device_id(value: str) -> str:
    """A name a device may take: valid and not a program's."""
    check_name("device id", value)
    if is_reserved(value):
        raise TopicError(
            f"device id {value!r} is reserved for the site's own programs ({', '.join(sorted(RESERVED_NAMES))}, "
            f"and every name starting with {WORKER_PREFIX!r}: central's workers)"
        )
    return value


def up(site: str, device: str, kind: str) -> str:
    if kind not in UP_KINDS:
        raise TopicError(f"unknown up kind {kind!r}; expected one of {', '.join(UP_KINDS)}")
    return str(Topic(check_name("site", site), check_name("device", device), "up", kind))


def down(site: str, device: str, kind: str) -> str:
    if kind not in DOWN_KINDS:
        raise TopicError(f"unknown down kind {kind!r}; expected one of {', '.join(DOWN_KINDS)}")
    return str(Topic(check_name("site", site), check_name("device", device), "down", kind))


def parse(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != ROOT:
        raise TopicError(f"topic {topic!r} is not under {ROOT}/{{site}}/{{device}}/{{up|down}}/{{kind}}")
    _, _, site, device, direction, kind = parts
    check_name("site", site)
    check_name("device", device)
    if direction == "up":
        allowed = UP_KINDS
    elif direction == "down":
        allowed = DOWN_KINDS
    else:
        raise TopicError(f"topic {topic!r}: direction must be 'up' or 'down', not {direction!r}")
    if kind not in allowed:
        raise TopicError(
            f"topic {topic!r}: unknown {direction} kind {kind!r}; expected one of {', '.join(allowed)}"
        )
    return Topic(site, device, direction, kind)


def all_up(site: str = "+") -> str:
    """Subscription filter for everything devices send (central's subscription)."""
    return f"{ROOT}/{site}/+/up/#"


def device_down(site: str, device: str) -> str:
    """Subscription filter for everything central sends to one device."""
    return f"{ROOT}/{check_name('site', site)}/{check_name('device', device)}/down/#"
