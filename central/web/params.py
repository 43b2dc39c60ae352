"""What an API request sends, checked before a view acts on it: integers and choices in the query string
within their bounds, and JSON bodies against a pydantic model each (strict types, no unknown keys). Anything
else is refused with 400 and the reason, ``{"error": ...}``, never a 500 from deeper down.

openapi.py describes each parameter and body from the same objects (``Int.schema()``, ``body_schema``), so
the document says exactly what is checked here; tests/central/test_api_fuzz.py holds the two together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, TypeVar

from flask import abort, jsonify, request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from werkzeug.routing import BaseConverter

ULID_PATTERN = "[0-9A-HJKMNP-TV-Z]{26}"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # SQLite's integers: anything larger fails in the store


def refuse(message: str, status: int = 400):
    """End the request with ``{"error": message}``."""
    response = jsonify(error=message)
    response.status_code = status
    abort(response)


@dataclass(frozen=True)
class Int:
    """A whole number in the query string: absent means ``default``; anything else must be within
    ``ge``..``le``."""

    name: str
    default: int
    ge: int
    le: int
    text: str = ""

    def read(self) -> int:
        raw = request.args.get(self.name)
        if raw is None:
            return self.default
        if not re.fullmatch(r"-?[0-9]{1,20}", raw) or not self.ge <= int(raw) <= self.le:
            refuse(f"{self.name} must be a whole number from {self.ge} to {self.le}")
        return int(raw)

    def schema(self) -> dict:
        return {"type": "integer", "minimum": self.ge, "maximum": self.le, "default": self.default}


@dataclass(frozen=True)
class Choice:
    """One of a few words in the query string; absent means ``default`` (None: the parameter is required)."""

    name: str
    choices: tuple[str, ...]
    default: str | None = None
    text: str = ""

    def read(self) -> str:
        value = request.args.get(self.name, self.default)
        if value not in self.choices:
            refuse(f"{self.name} must be one of {', '.join(self.choices)}")
        return value

    def schema(self) -> dict:
        schema = {"type": "string", "enum": list(self.choices)}
        return schema if self.default is None else {**schema, "default": self.default}


class UlidConverter(BaseConverter):
    """``<ulid:name>`` in a route: a ULID as ``kuzet.shared.ids`` makes them, so that a word beside it
    (``/dispatches/intercept``) is never taken for one."""

    regex = ULID_PATTERN


def required_text(name: str) -> str:
    """A query-string parameter that must be there and not blank."""
    value = request.args.get(name, "").strip()
    if not value:
        refuse(f"give ?{name}=")
    return value


# --- JSON bodies ----------------------------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: strict JSON types (no "1" for 1, no 1 for true) and no keys the model does not name."""

    model_config = ConfigDict(strict=True, extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def Text(max_length: int) -> type[str]:  # noqa: N802 (a type, used as one)
    """Text of at most ``max_length`` characters."""
    return Annotated[str, Field(max_length=max_length)]


def Required(max_length: int) -> type[str]:  # noqa: N802
    """Text that must be there with something besides spaces (stripped), at most ``max_length`` long."""
    return Annotated[
        str,
        # A character str.strip() keeps: JSON Schema's \s (ECMAScript) lacks \x1c-\x1f and \x85, which Python
        # strips, so "\x85" would pass the document's pattern and be refused here as blank.
        Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": r"[^\s\x1c-\x1f\x85]"}),
        AfterValidator(_not_blank),
    ]


Number = Annotated[float, Field(ge=INT64_MIN, le=INT64_MAX)]
Integer = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


def _within_int64(value):
    # A whole number outside int64 would otherwise pass as a float, rounded into range.
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} is outside {INT64_MIN}..{INT64_MAX}")
    return value


Scalar = Annotated[str | bool | Integer | Number, BeforeValidator(_within_int64)]  # e.g. a command's argument

B = TypeVar("B", bound=BaseModel)


def problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())


def body(model: type[B], optional: bool = False) -> B:
    """The request's JSON object as ``model``; ``optional``: no body at all means every default."""
    data = request.get_json(silent=True)
    if data is None and optional and not request.get_data():
        data = {}
    if not isinstance(data, dict):
        refuse("send a JSON object with Content-Type: application/json")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        refuse(problems(exc))


def body_schema(model: type[BaseModel]) -> dict:
    """The model as JSON Schema for the OpenAPI document (without pydantic's titles)."""
    return _untitled(model.model_json_schema())


def _untitled(schema):
    if isinstance(schema, dict):
        return {k: _untitled(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    return schema
