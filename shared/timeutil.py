"""UTC timestamps as they travel on the wire: ISO-8601 with millisecond precision and a trailing Z."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_wire(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: Kuzet timestamps are always UTC")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_wire() -> str:
    return to_wire(utc_now())


def from_wire(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone; send UTC with a trailing Z")
    return moment.astimezone(UTC)
