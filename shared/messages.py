"""Message schemas for every topic kind, with strict validation that explains what is wrong.

Each message is a JSON object with an envelope (``v`` schema version, ``type``, ``id`` a ULID unique to this
message, ``device`` the sender or addressee, ``ts`` a UTC time) and the fields of its type. Unknown fields,
missing fields and wrong types are refused: a device that sends garbage is told so, never half-understood.

Binary payloads (JPEG snapshots, clip chunks, live frames) travel base64-encoded inside the JSON so that every
message can be written and read with mosquitto_pub/mosquitto_sub alone.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from kuzet.shared import ids, timeutil, topics

SCHEMA_VERSION = 1

# Clocks on field devices drift; beyond this a timestamp is refused as "in the future".
MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_TIMESTAMP = datetime(2020, 1, 1, tzinfo=UTC)


def _sane_time(value: datetime) -> datetime:
    """Every time on the wire: UTC (or at least zoned), not in the future beyond clock skew, not before 2020.
    A device with a wrong clock is told so here, rather than breaking central's store further on."""
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone; send UTC with a trailing Z")
    value = value.astimezone(UTC)
    if value > timeutil.utc_now() + MAX_CLOCK_SKEW:
        raise ValueError(
            f"timestamp {timeutil.to_wire(value)} is in the future; check the device clock (NTP)"
        )
    if value < EARLIEST_TIMESTAMP:
        raise ValueError(f"timestamp {timeutil.to_wire(value)} is before 2020; check the device clock (NTP)")
    return value


Name = Annotated[str, Field(pattern=rf"^{topics.NAME_PATTERN}$")]
# Every time field of every message: checked as above, always written as ISO-8601 UTC with milliseconds and a Z.
UtcTime = Annotated[
    datetime,
    AfterValidator(_sane_time),
    PlainSerializer(timeutil.to_wire, return_type=str, when_used="json"),
]
Id = Annotated[str, Field(min_length=26, max_length=26, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=2000)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
Base64 = Annotated[str, Field(min_length=4)]

# Every integer on the wire is bounded. Central stores them in SQLite, whose integers are signed 64-bit: a larger
# one passed validation and then failed in the store, after the message had been accepted (issue 17, item 14).
# Fields whose meaning gives a tighter bound have it; tests/hardening/test_message_int_bounds.py finds every int
# field by introspection, so a new unbounded one fails there.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# Counts and counters: also exact in a browser's JavaScript numbers (the page shows them).
COUNT_MAX = 2**53 - 1
Count = Annotated[int, Field(ge=0, le=COUNT_MAX)]
# Sequence numbers and indexes that grow over a device's life (event updates, live frames, evidence segments,
# tracker ids): a 32-bit range outlasts any device by centuries at their rates.
SEQ_MAX = 2**31 - 1
Seq = Annotated[int, Field(ge=0, le=SEQ_MAX)]
MAX_CLIP_CHUNKS = 100_000
ChunkIndex = Annotated[int, Field(ge=0, lt=MAX_CLIP_CHUNKS)]
PixelSize = Annotated[int, Field(gt=0, le=16_384)]
# The most a clip or evidence segment can hold: every chunk full (CLIP_CHUNK_BYTES, below).
MAX_CLIP_BYTES = MAX_CLIP_CHUNKS * 256 * 1024


def _int64_attribute(value):
    # A JSON integer outside int64 would otherwise be taken as a float by the union below, silently rounded.
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"integer {value} is outside the signed 64-bit range ({INT64_MIN}..{INT64_MAX})")
    return value


AttributeValue = Annotated[str | Int64 | float | bool, BeforeValidator(_int64_attribute)]
Attributes = Annotated[dict[Annotated[str, Field(max_length=40)], AttributeValue], Field(max_length=20)]

EventType = Literal[
    "zone_enter",  # an object entered a zone
    "zone_exit",  # an object left a zone
    "loitering",  # dwelt in a zone longer than allowed
    "line_crossing",  # crossed a line in the forbidden direction
    "crowd",  # more persons in a zone than allowed
    "no_stopping",  # a vehicle stopped in a no-stopping zone
    "object_left",  # a stationary object appeared where a person just was (litter, a stash)
    "running",  # faster than a walking pace
    "chase",  # a person running and another running after them the same way (a snatched bag)
    "person_down",  # a person who was upright now lies still (a fall, a drunk person)
    "repeated_stops",  # one person stopping again and again at different spots (a "stash" courier)
    "panic",  # an officer pressed the badge's panic button
    "manual",  # raised by an operator or inspector
    "watchlist_match",  # a face on a camera within the site's threshold of a watchlist entry (WATCHLIST_MATCH)
]
Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
DutyStatus = Literal["available", "en_route", "on_scene", "busy", "off_duty"]
DispatchStateName = Literal["acknowledged", "en_route", "on_scene", "resolved", "declined"]
CommandName = Literal[
    "reload_config",
    "snapshot",
    "live_start",
    "live_stop",
    "detection_on",
    "detection_off",
    "install_update",  # args: url (http/https) or path (on the device) of a signed bundle
    "rollback_update",  # args: kind (model or config): back to the previous version
    "cancel_dispatch",  # to a badge: an operator cancelled or reassigned its dispatch (args: dispatch_id, reason)
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeoPoint(Model):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class Box(Model):
    """Pixel box in the frame of the camera that saw it: left, top, width, height."""

    x: Annotated[float, Field(ge=0)]
    y: Annotated[float, Field(ge=0)]
    w: Annotated[float, Field(gt=0)]
    h: Annotated[float, Field(gt=0)]


class ModelInfo(Model):
    name: ShortText
    sha256: Sha256


class Envelope(Model):
    v: Literal[1] = SCHEMA_VERSION
    id: Id = Field(default_factory=ids.new_id)
    device: Name
    ts: UtcTime = Field(default_factory=timeutil.utc_now)


def _valid_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"data is not valid base64 ({exc})") from None
    return value


# --- device -> central ------------------------------------------------------------------------------------


class Event(Envelope):
    """One state of an event. An event is opened, updated and closed: the same ``event_id`` with rising ``seq``."""

    type: Literal["event"] = "event"
    event_id: Id
    seq: Seq
    state: Literal["open", "update", "closed"]
    event_type: EventType
    severity: Severity
    label: ShortText
    score: Score
    started_at: UtcTime
    ended_at: UtcTime | None = None
    zone: ShortText | None = None
    track_ids: Annotated[list[Seq], Field(max_length=100)] = []
    box: Box | None = None
    frame_size: tuple[PixelSize, PixelSize] | None = None
    location: GeoPoint | None = None
    snapshot_sha256: Sha256 | None = None
    clip_id: Id | None = None
    description: LongText | None = None
    attributes: Attributes = {}

    @model_validator(mode="after")
    def _span_is_ordered(self) -> Event:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.state == "closed" and self.ended_at is None:
            raise ValueError("a closed event needs ended_at")
        if self.event_type == "watchlist_match":
            _check_watchlist_match(self)
        return self


# A ``watchlist_match`` event's attributes, exactly these (docs/faces.md): the entry matched (its id only: the
# camera knows no names), the embedding distance and the threshold it was under, and the sha256 of the face crop,
# sent as a second ``snapshot`` of the event beside the scene (``snapshot_sha256``). ``track_ids`` holds the one
# track, ``box`` the face in the frame.
WATCHLIST_MATCH = {"entry_id": str, "distance": float, "threshold": float, "face_sha256": str}
# Where the camera has a ground calibration in map coordinates: the person's compass bearing of travel, 0-360.
WATCHLIST_MATCH_OPTIONAL = {"direction_deg": float}


def _check_watchlist_match(event: Event) -> None:
    attributes = event.attributes
    if not set(WATCHLIST_MATCH) <= set(attributes) <= set(WATCHLIST_MATCH) | set(WATCHLIST_MATCH_OPTIONAL):
        raise ValueError(
            f"a watchlist_match event's attributes are exactly {', '.join(WATCHLIST_MATCH)}"
            f" (and optionally {', '.join(WATCHLIST_MATCH_OPTIONAL)})"
        )
    for name, kind in (WATCHLIST_MATCH | WATCHLIST_MATCH_OPTIONAL).items():
        if name in attributes and not isinstance(attributes[name], kind):
            raise ValueError(f"watchlist_match attribute '{name}' must be a {kind.__name__}")
    if not 0.0 <= attributes.get("direction_deg", 0.0) < 360.0:
        raise ValueError("watchlist_match 'direction_deg' must be a compass bearing, 0-360")
    if not ids.is_id(attributes["entry_id"]):
        raise ValueError("watchlist_match attribute 'entry_id' is not an id")
    if not 0.0 <= attributes["distance"] <= attributes["threshold"] <= 2.0:
        raise ValueError("watchlist_match 'distance' must be within 'threshold', both 0-2")
    if len(attributes["face_sha256"]) != 64 or set(attributes["face_sha256"]) - set("0123456789abcdef"):
        raise ValueError("watchlist_match attribute 'face_sha256' is not a sha256 hex digest")
    if len(event.track_ids) != 1 or event.box is None:
        raise ValueError("a watchlist_match event names its one track and the face's box")


class Snapshot(Envelope):
    """The best JPEG frame of an event, boxes drawn."""

    type: Literal["snapshot"] = "snapshot"
    event_id: Id
    sha256: Sha256
    content_type: Literal["image/jpeg"] = "image/jpeg"
    width: Annotated[int, Field(gt=0, le=8192)]
    height: Annotated[int, Field(gt=0, le=8192)]
    data: Base64

    _check_data = field_validator("data")(_valid_base64)


class ClipChunk(Envelope):
    """One chunk of a clip or a badge evidence segment. ``sha256`` is of the whole file; ``chunk_sha256`` of this
    chunk's bytes. The receiver checks both and asks again (``clip_request``) for what is missing or bad."""

    type: Literal["clip"] = "clip"
    clip_id: Id
    purpose: Literal["event", "evidence"] = "event"
    event_id: Id | None = None
    index: ChunkIndex
    count: Annotated[int, Field(gt=0, le=MAX_CLIP_CHUNKS)]
    size: Annotated[int, Field(gt=0, le=MAX_CLIP_BYTES)]
    sha256: Sha256
    chunk_sha256: Sha256
    content_type: Literal["video/mp4", "video/x-msvideo", "video/x-matroska"]
    data: Base64

    _check_data = field_validator("data")(_valid_base64)

    @model_validator(mode="after")
    def _index_in_range(self) -> ClipChunk:
        if self.index >= self.count:
            raise ValueError(f"chunk index {self.index} is not below count {self.count}")
        return self


class ClipLost(Envelope):
    """The device will never send (the rest of) a clip or evidence segment it promised: central stops waiting
    for it and marks it lost. A clip is promised when its event names it (``clip_id``), so every promised clip
    ends either verified at central or reported here.

    ``reason``: ``interrupted`` (the agent was killed while recording it and the partial file could not be
    read back), ``failed`` (nothing was recorded, or the file could not be stored), ``quota`` (dropped under
    the device's disk quota before it was delivered), ``gone`` (asked for again after the device had removed
    it)."""

    type: Literal["clip_lost"] = "clip_lost"
    clip_id: Id
    purpose: Literal["event", "evidence"] = "event"
    event_id: Id | None = None
    reason: Literal["interrupted", "failed", "quota", "gone"]
    detail: ShortText = ""


class Status(Envelope):
    """Heartbeat: how the device is doing. Fields a kind of device does not have are left out."""

    type: Literal["status"] = "status"
    kind: Literal["camera", "badge"]
    software_version: ShortText
    uptime_s: Annotated[float, Field(ge=0)]
    fps_in: Annotated[float, Field(ge=0)] | None = None
    fps_processed: Annotated[float, Field(ge=0)] | None = None
    detector_ms: Annotated[float, Field(ge=0)] | None = None
    motion_share: Score | None = None
    outbox_depth: Count | None = None
    disk_free_mb: Annotated[float, Field(ge=0)] | None = None
    cpu_temp_c: Annotated[float, Field(ge=-60, le=150)] | None = None
    memory_rss_mb: Annotated[float, Field(ge=0)] | None = None
    battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    model: ModelInfo | None = None
    source_state: ShortText | None = None
    detection_enabled: bool | None = None
    duty: DutyStatus | None = None
    # A camera with face matching on: "current", or "none" when it holds no current watchlist (docs/faces.md).
    watchlist: Literal["current", "none"] | None = None
    counters: Annotated[dict[Annotated[str, Field(max_length=40)], Count], Field(max_length=40)] = {}


class Availability(Envelope):
    """Retained; the broker publishes the device's last will (``offline``) when it vanishes."""

    type: Literal["availability"] = "availability"
    state: Literal["online", "offline"]


class Location(Envelope):
    """A badge's position and duty status: every N seconds, on significant movement and on a duty change."""

    type: Literal["location"] = "location"
    position: GeoPoint
    accuracy_m: Annotated[float, Field(ge=0)] | None = None
    speed_mps: Annotated[float, Field(ge=0)] | None = None
    heading_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    fix: Literal["gps", "gpsd", "route", "none"]
    duty: DutyStatus


class DispatchState(Envelope):
    """A badge's answer to a dispatch: acknowledged, en route, on scene, resolved (with a note) or declined."""

    type: Literal["dispatch_state"] = "dispatch_state"
    dispatch_id: Id
    state: DispatchStateName
    note: LongText | None = None
    reason: ShortText | None = None
    position: GeoPoint | None = None

    @model_validator(mode="after")
    def _declined_has_reason(self) -> DispatchState:
        if self.state == "declined" and not self.reason:
            raise ValueError("a declined dispatch needs a reason")
        return self


# A device carries out a command younger than this (by its ``ts``) and answers an older one EXPIRED; central sends
# a command again to a device back online (another broker, or one restarted) only while it is younger.
COMMAND_MAX_AGE_S = 300.0
# In a ``CommandResult``'s ``data``: true when the command arrived too late to be carried out. A late copy of a
# command the device already answered (kept for it by the site's other broker) says so, and changes nothing.
EXPIRED = "expired"
# True when the device stopped (killed, power lost) after accepting the command and before answering it: it
# answers when it starts again, without carrying the command out again. An answer sent already stands.
INTERRUPTED = "interrupted"


class CommandResult(Envelope):
    type: Literal["command_result"] = "command_result"
    command_id: Id
    name: CommandName
    ok: bool
    message: LongText = ""
    data: Attributes = {}


class LiveFrame(Envelope):
    """One low-rate JPEG frame of a live stream started by a ``live_start`` command."""

    type: Literal["live"] = "live"
    stream_id: Id
    seq: Seq
    width: Annotated[int, Field(gt=0, le=4096)]
    height: Annotated[int, Field(gt=0, le=4096)]
    data: Base64

    _check_data = field_validator("data")(_valid_base64)


class EvidenceSegment(Envelope):
    """One body-camera recording segment, chained to the one before by hash.

    ``chain_sha256 = sha256(prev_chain_sha256 + sha256 + str(index) + started_at + ended_at)`` (hex strings,
    timestamps as on the wire): editing, dropping or re-ordering any segment breaks every link after it.
    The bytes travel as ``clip`` chunks with ``purpose = "evidence"`` and ``clip_id = segment_id``.
    """

    type: Literal["evidence"] = "evidence"
    segment_id: Id
    index: Seq
    started_at: UtcTime
    ended_at: UtcTime
    size: Annotated[int, Field(gt=0, le=MAX_CLIP_BYTES)]
    sha256: Sha256
    prev_chain_sha256: Sha256 | None = None  # None for the first segment (encode() leaves None out)
    chain_sha256: Sha256
    content_type: Literal["video/mp4", "video/x-msvideo", "video/x-matroska"]
    dispatch_id: Id | None = None


# --- central -> device ------------------------------------------------------------------------------------


class Dispatch(Envelope):
    """A task for one badge. ``device`` is the badge it is addressed to."""

    type: Literal["dispatch"] = "dispatch"
    dispatch_id: Id
    mode: Literal["nearest", "intercept", "manual"]
    event_id: Id | None = None
    event_type: EventType
    severity: Severity
    place: GeoPoint
    address: ShortText | None = None
    description: LongText = ""
    distance_m: Annotated[float, Field(ge=0)] | None = None
    direction_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    ack_deadline_s: Annotated[int, Field(gt=0, le=3600)] = 60
    snapshot: Base64 | None = None

    _check_snapshot = field_validator("snapshot")(lambda v: v if v is None else _valid_base64(v))


class Command(Envelope):
    type: Literal["command"] = "command"
    command_id: Id
    name: CommandName
    args: Attributes = {}

    def answer(self, device: str, ok: bool, message: str, data: dict | None = None) -> CommandResult:
        """The result a device sends back; a message longer than the contract allows is cut, not refused."""
        return CommandResult(
            device=device,
            command_id=self.command_id,
            name=self.name,
            ok=ok,
            message=message[:2000],
            data=data or {},
        )


class ClipRequest(Envelope):
    """Central asks a device to send chunks again: the listed ones, or every chunk when ``missing`` is empty."""

    type: Literal["clip_request"] = "clip_request"
    clip_id: Id
    missing: Annotated[list[ChunkIndex], Field(max_length=10_000)] = []


class Resend(Envelope):
    """Central lost messages the broker had acknowledged to devices (the broker crashed, or was replaced, with
    them queued): send again everything the broker acknowledged at or after ``since`` (central's clock, the last
    moment it knows it stored what it was sent, minus a margin). Retained, so that a device offline now gets it
    when it comes back; a device carries out each request (``id``) once."""

    type: Literal["resend"] = "resend"
    since: UtcTime
    reason: ShortText


class WatchlistPush(Envelope):
    """The site's face watchlist for one camera (docs/faces.md), retained on that camera's own
    ``down/watchlist`` topic so that only it (the broker's ACL) gets it, now or when it comes back.

    ``bundle``: a signed ``watchlist`` update bundle (shared/bundles.py, signed with the site's *watchlist* key,
    never the update key), base64. ``None`` is a wipe: the camera deletes its sealed copy at once (the device
    was revoked, or the watchlist is empty or lapsed); ``reason`` says why."""

    type: Literal["watchlist"] = "watchlist"
    bundle: Annotated[str, AfterValidator(_valid_base64)] | None = None
    reason: ShortText = ""


Message = (
    Event
    | Snapshot
    | ClipChunk
    | ClipLost
    | Status
    | Availability
    | Location
    | DispatchState
    | CommandResult
    | LiveFrame
    | EvidenceSegment
    | Dispatch
    | Command
    | ClipRequest
    | Resend
    | WatchlistPush
)

MODEL_FOR_KIND: dict[str, type[Envelope]] = {
    "event": Event,
    "snapshot": Snapshot,
    "clip": ClipChunk,
    "clip_lost": ClipLost,
    "status": Status,
    "availability": Availability,
    "location": Location,
    "dispatch_state": DispatchState,
    "command_result": CommandResult,
    "live": LiveFrame,
    "evidence": EvidenceSegment,
    "dispatch": Dispatch,
    "command": Command,
    "clip_request": ClipRequest,
    "resend": Resend,
    "watchlist": WatchlistPush,
}
assert set(MODEL_FOR_KIND) == set(topics.UP_KINDS) | set(topics.DOWN_KINDS)

KIB = 1024
MAX_PAYLOAD_BYTES: dict[str, int] = {
    "event": 16 * KIB,
    "snapshot": 1024 * KIB,
    "clip": 512 * KIB,
    "clip_lost": 2 * KIB,
    "status": 8 * KIB,
    "availability": 1 * KIB,
    "location": 2 * KIB,
    "dispatch_state": 8 * KIB,
    "command_result": 8 * KIB,
    "live": 512 * KIB,
    "evidence": 4 * KIB,
    "dispatch": 1024 * KIB,
    "command": 8 * KIB,
    "clip_request": 64 * KIB,
    "resend": 2 * KIB,
    # A watchlist bundle, base64: about 1,000 embeddings (docs/faces.md); the broker's limit is set from this
    # table's largest, so a larger one would raise it for every topic.
    "watchlist": 1024 * KIB,
}
# Raw bytes per clip chunk: base64 grows it by 4/3, which keeps a chunk message well under its limit.
CLIP_CHUNK_BYTES = 256 * KIB
assert MAX_CLIP_BYTES == MAX_CLIP_CHUNKS * CLIP_CHUNK_BYTES


class InvalidMessage(ValueError):
    """A message that breaks the contract. ``reason`` is one line a person can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "message"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown field '{where}'")
        elif error["type"] == "missing":
            parts.append(f"missing field '{where}'")
        else:
            got = error.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            if len(shown) > 60:
                shown = shown[:57] + "..."
            reason = error["msg"].removeprefix("Value error, ")  # our own checks already say what is wrong
            parts.append(f"field '{where}': {reason} (got {shown})")
    return "; ".join(parts)


def decode(topic: str, payload: bytes) -> Envelope:
    """Check a message received on ``topic`` against its contract, or raise InvalidMessage saying why."""
    try:
        where = topics.parse(topic)
    except topics.TopicError as exc:
        raise InvalidMessage(str(exc)) from None
    limit = MAX_PAYLOAD_BYTES[where.kind]
    if len(payload) > limit:
        raise InvalidMessage(f"{where.kind} payload is {len(payload)} bytes; the limit is {limit}")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidMessage("payload is nested too deeply to be a Kuzet message") from None
    if not isinstance(raw, dict):
        raise InvalidMessage(f"payload must be a JSON object, not {type(raw).__name__}")
    version = raw.get("v")
    if version != SCHEMA_VERSION:
        raise InvalidMessage(
            f"schema version {version!r} is not supported; this side speaks v{SCHEMA_VERSION}"
        )
    if raw.get("type") != where.kind:
        raise InvalidMessage(f"type {raw.get('type')!r} does not match the topic's kind {where.kind!r}")
    model = MODEL_FOR_KIND[where.kind]
    # ``id`` and ``ts`` have defaults for messages made here; on the wire they are required (a retry without
    # its id could not be recognised as one).
    unsent = [f"missing field '{name}'" for name in ("id", "ts") if name not in raw]
    try:
        message = model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        raise InvalidMessage("; ".join([*unsent, _describe(exc)])) from None
    if unsent:
        raise InvalidMessage("; ".join(unsent))
    if message.device != where.device:
        raise InvalidMessage(
            f"device {message.device!r} in the message does not match {where.device!r} in the topic"
        )
    return message


def encode(message: Envelope) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_base64(text: str) -> bytes:
    return base64.b64decode(text)
