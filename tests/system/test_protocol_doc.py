"""docs/protocol.md is the contract people use with mosquitto_pub: every example in it must be valid."""

import json
import re
from pathlib import Path

from kuzet.shared import messages, topics

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
EXAMPLE = re.compile(r"Topic: `([^`]+)`\s+```json\n(.*?)\n```", re.S)


def examples():
    return EXAMPLE.findall(DOC.read_text())


def test_every_message_kind_has_a_valid_example():
    found = {}
    for topic, body in examples():
        message = messages.decode(topic, body.encode())
        found[topics.parse(topic).kind] = message
    assert set(found) == set(topics.UP_KINDS) | set(topics.DOWN_KINDS)


def test_the_mosquitto_pub_example_is_valid():
    text = DOC.read_text()
    command = re.search(r"mosquitto_pub -h 127.0.0.1 -q 1 -t (\S+) -m '(\{\"v\":1,\"id\".*?)'\n", text)
    assert command, "the mosquitto_pub example is missing"
    message = messages.decode(command.group(1), command.group(2).encode())
    assert message.state == "open" and message.seq == 0
    assert (
        json.loads(command.group(2))["event_id"] != json.loads(dict(examples())[command.group(1)])["event_id"]
    )
