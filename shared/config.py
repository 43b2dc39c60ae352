"""Typed TOML configuration: one file per device and one for central, checked on load.

Technicians edit these by hand, often on a ladder, so an error names the file, the key and what was expected.
Each side defines its own sections as ``Section`` subclasses; unknown keys are refused (a typo must not be
silently ignored).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from kuzet.shared.topics import NAME_PATTERN, check_device_id

Name = Annotated[str, Field(pattern=rf"^{NAME_PATTERN}$")]
# A device's own name: valid, and none of the names kept for central, its workers and the tools.
DeviceId = Annotated[Name, AfterValidator(check_device_id)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    pass


class KeyProblem(ValueError):
    """Raised by a section's own check to blame one key rather than the whole section. ``key`` is relative to
    the section whose validator raises it: ``KeyProblem(("rules", 2, "zone"), "no zone named 'x'; ...")`` from
    the top level is reported as ``rules.2.zone``."""

    def __init__(self, key: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.key = key
        self.message = message


class DeviceSection(Section):
    id: DeviceId
    site: Name = "pavlodar"
    name: str = ""
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class TlsSection(Section):
    ca: Path
    cert: Path | None = None
    key: Path | None = None


DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


class MqttSection(Section):
    """Where the MQTT brokers are. ``brokers`` is an ordered list (primary first, then standbys); the older
    single ``url`` is still accepted and means a list of one. After loading, ``brokers`` always holds the
    list and ``url`` its first entry, the primary."""

    brokers: Annotated[list[str], Field(min_length=1, max_length=8)] | None = None
    url: str | None = None
    username: str | None = None
    password: str | None = None
    tls: TlsSection | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    protocol: Literal["3.1.1", "5"] = "5"
    # Failover (shared/failover.py): a broker that is not reachable for this long after the link lost it (or
    # after the link first tried it) is left for the next in ``brokers``.
    failover_after_s: Annotated[float, Field(gt=0, le=600)] = 10
    # While on a standby, how often the primary is tried; once it accepts connections the link goes back to
    # it. 0: stay on the standby until it fails in its turn.
    return_to_primary_s: Annotated[float, Field(ge=0, le=86_400)] = 60

    @model_validator(mode="after")
    def _one_list(self) -> MqttSection:
        if self.brokers is not None and self.url not in (None, self.brokers[0]):
            raise KeyProblem(("url",), "give either 'brokers' (a list) or 'url' (one broker), not both")
        brokers = self.brokers or [self.url or DEFAULT_BROKER]
        for index, url in enumerate(brokers):
            problem = broker_url_problem(url)
            if problem:
                raise KeyProblem(("brokers", index) if self.brokers else ("url",), problem)
        if len({url.startswith(("mqtts:", "ssl:")) for url in brokers}) > 1:
            raise KeyProblem(("brokers",), "mix of TLS (mqtts://) and plain (mqtt://) brokers: use one kind")
        if len(set(brokers)) != len(brokers):
            raise KeyProblem(("brokers",), "the same broker is listed twice")
        object.__setattr__(self, "brokers", brokers)
        object.__setattr__(self, "url", brokers[0])
        return self


def broker_url_problem(url: str) -> str | None:
    """What is wrong with a broker URL, or None."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        return f"broker URL {url!r}: scheme must be mqtt:// or mqtts://"
    if not parsed.hostname:
        return f"broker URL {url!r} has no host"
    try:
        parsed.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return f"broker URL {url!r} has a bad port"
    return None


T = TypeVar("T", bound=BaseModel)


_ABSENT = object()


def _value_at(data, where: tuple) -> object:
    """The value the file has at ``where`` (keys and list indexes), or _ABSENT."""
    for step in where:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return data


def _describe(path: Path, exc: ValidationError, data: dict) -> str:
    lines = [f"{path}: invalid configuration"]
    for error in exc.errors(include_url=False):
        where = tuple(error["loc"])
        problem = (error.get("ctx") or {}).get("error")
        if isinstance(problem, KeyProblem):
            where += problem.key
            message = problem.message
        else:
            message = error["msg"].removeprefix("Value error, ")
        key = ".".join(str(p) for p in where) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling and the section it is in)")
        elif error["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            # What the file has at that key: never a whole section (a technician needs the line, not a dump).
            got = _value_at(data, where)
            shown = "" if got is _ABSENT or isinstance(got, dict) else repr(got)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"  {key}: {message}" + (f" (got {shown})" if shown else ""))
    return "\n".join(lines)


def load(path: str | Path, model: type[T]) -> T:
    """Read and check a TOML file against ``model``; raise ConfigError with a readable message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, model, path)


def parse(data: dict, model: type[T], path: str | Path = "<config>") -> T:
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(Path(path), exc, data)) from None
    # Relative paths in a config file are relative to that file, not to wherever the agent was started.
    base = Path(path).parent if str(path) != "<config>" else None
    if base is not None:
        _resolve_paths(config, base)
    return config


def _resolve_paths(node: BaseModel, base: Path) -> None:
    for name in type(node).model_fields:
        value = getattr(node, name)
        if isinstance(value, Path) and not value.is_absolute() and not str(value).startswith("~"):
            object.__setattr__(node, name, (base / value).resolve())
        elif isinstance(value, Path) and str(value).startswith("~"):
            object.__setattr__(node, name, value.expanduser())
        elif isinstance(value, BaseModel):
            _resolve_paths(value, base)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _resolve_paths(item, base)
