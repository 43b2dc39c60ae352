"""Issue 17, item 14: integers above 2**63 passed validation and then failed in central's store (SQLite integers
are signed 64-bit), so an ``evidence`` record like that was neither stored nor dead-lettered.

Every int field of every message kind is found by introspection (so a new unbounded field fails here), set to
2**63 in a valid example from docs/protocol.md, and ``decode`` must refuse it with a reason naming the field."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from kuzet.shared import messages, topics
from kuzet.shared.messages import InvalidMessage, decode

BIG = 2**63
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
DOC_EXAMPLE = re.compile(r"Topic: `([^`]+)`\s+```json\n(.*?)\n```", re.S)


def _examples() -> dict[str, tuple[str, dict]]:
    found = {}
    for topic, body in DOC_EXAMPLE.findall(DOC.read_text()):
        found.setdefault(topics.parse(topic).kind, (topic, json.loads(body)))
    return found


def _sites(annotation) -> list:
    """Builders (big, current value) -> a field value with ``big`` at one integer position of ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _sites(args[0])
    if annotation is int:
        return [lambda big, current: big]
    if annotation is bool or origin is typing.Literal:
        return []
    if origin in (typing.Union, types.UnionType):
        return [site for arm in args if arm is not type(None) for site in _sites(arm)]
    if origin is list:
        return [lambda big, current, inner=inner: [inner(big, None)] for inner in _sites(args[0])]
    if origin is tuple:
        built = []
        for position, arm in enumerate(args):
            for inner in _sites(arm):
                built.append(
                    lambda big, current, position=position, inner=inner: [
                        inner(big, None) if i == position else 1 for i in range(len(args))
                    ]
                )
        return built
    if origin is dict:
        return [lambda big, current, inner=inner: {"k": inner(big, None)} for inner in _sites(args[1])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        built = []
        for name, info in annotation.model_fields.items():
            for inner in _sites(
                info.annotation if not info.metadata else typing.Annotated[info.annotation, *info.metadata]
            ):
                built.append(
                    lambda big, current, name=name, inner=inner: {
                        **(current or {}),
                        name: inner(big, (current or {}).get(name)),
                    }
                )
        return built
    return []


def _int_fields() -> list[tuple[str, str, int]]:
    found = []
    for kind, model in messages.MODEL_FOR_KIND.items():
        for name, info in model.model_fields.items():
            annotation = (
                typing.Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            )
            for number, _ in enumerate(_sites(annotation)):
                found.append((kind, name, number))
    return found


INT_FIELDS = _int_fields()


def test_the_introspection_finds_the_integer_fields():
    names = {(kind, name) for kind, name, _ in INT_FIELDS}
    assert {("evidence", "index"), ("evidence", "size"), ("clip", "size"), ("event", "seq")} <= names
    assert {("status", "counters"), ("event", "attributes"), ("clip_request", "missing")} <= names
    assert set(_examples()) == set(messages.MODEL_FOR_KIND)  # a valid example of every kind to start from


@pytest.mark.parametrize("kind, name, number", INT_FIELDS, ids=[f"{k}.{n}.{i}" for k, n, i in INT_FIELDS])
def test_an_integer_of_2_to_the_63_is_refused_with_a_reason(kind, name, number):
    topic, example = _examples()[kind]
    decode(topic, json.dumps(example).encode())  # the example is valid as it stands
    model = messages.MODEL_FOR_KIND[kind]
    info = model.model_fields[name]
    annotation = typing.Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    example[name] = _sites(annotation)[number](BIG, example.get(name))
    with pytest.raises(InvalidMessage) as caught:
        decode(topic, json.dumps(example).encode())
    reason = caught.value.reason
    assert f"field '{name}" in reason, reason
    assert "missing field" not in reason, reason
    assert re.search(r"less than|outside the signed 64-bit range", reason), reason


def test_the_largest_int64_still_fits_where_the_meaning_allows_it():
    topic, example = _examples()["event"]
    example["attributes"] = {"n": 2**63 - 1, "m": -(2**63)}
    assert decode(topic, json.dumps(example).encode()).attributes["n"] == 2**63 - 1
