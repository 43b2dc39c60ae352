"""No device may take a program's name (central, one of central's workers ``central-...``, the technician's tool):
wherever a device id is checked (provisioning in tests/system/test_provision_cli.py; here central's
registration, a device's own config, and what ingest accepts), a reserved name is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kuzet.central.ingest import authority
from kuzet.central.store.registry import Registration
from kuzet.shared import messages, topics
from kuzet.shared.config import DeviceSection

RESERVED = ["central", "provision-tool", "central-web", "central-ingest-host1-9471"]
DEVICES = ["cam-1", "centralx", "badge-central-1"]  # only the prefix is reserved, not the word


def _status(device: str) -> messages.Status:
    return messages.Status(device=device, kind="camera", software_version="t", uptime_s=1.0)


@pytest.mark.parametrize("name", RESERVED)
def test_a_programs_name_is_refused_as_a_device_id(name):
    assert topics.is_reserved(name)
    with pytest.raises(ValidationError, match="reserved for the site's own programs"):
        Registration(device_id=name, kind="camera", site="pavlodar")
    with pytest.raises(ValidationError, match="reserved for the site's own programs"):
        DeviceSection(id=name)
    assert "program's identity" in authority.reason(_status(name), ("camera", "2026-01-01"), True)


@pytest.mark.parametrize("name", DEVICES)
def test_a_device_id_near_a_reserved_one_is_accepted(name):
    assert not topics.is_reserved(name)
    assert Registration(device_id=name, kind="camera", site="pavlodar").device_id == name
    assert DeviceSection(id=name).id == name
    assert authority.reason(_status(name), ("camera", "2026-01-01"), True) is None
