"""One device: its page (health; for a badge its unit, dispatches and evidence chain; live view; commands),
the command API (``POST``/``GET /api/v1/devices/<id>/commands``) and the evidence check
(``GET /api/v1/devices/<id>/evidence``). Sending a command needs the permission of that command
(``central.commands.PERMISSION``); each one and each result is audited."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, abort, jsonify, render_template
from flask_babel import gettext as _
from pydantic import Field

from kuzet.central import commands
from kuzet.central.auth import audit
from kuzet.central.routing import evidence
from kuzet.central.store import queries
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.params import Body, Int, Scalar, Text, body
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("device", __name__)

COMMANDS_LIMIT = Int("limit", 50, 1, 1000, "at most this many commands (default 50, max 1000)")


class CommandBody(Body):
    """``name`` is checked against the contract by ``commands.build`` (400, or 409 for routing's own)."""

    name: Text(40)
    args: Annotated[dict[Text(40), Scalar], Field(max_length=20)] = {}


def _device_or_404(device_id: str) -> dict:
    device = queries.get_device(central().db(), device_id)
    if device is None:
        abort(404, _("No device %(id)s.", id=device_id))
    return device


def _unit(device_id: str) -> dict | None:
    rows = [u for u in queries.list_units(central().db()) if u["device_id"] == device_id]
    return rows[0] if rows else None


@blueprint.get("/devices/<device_id>")
@require("devices.view")
def page(device_id: str):
    device = _device_or_404(device_id)
    user = current_user()
    unit = _unit(device_id)
    db = central().db()
    return render_template(
        "device.html",
        device=device,
        unit=unit,
        dispatches=queries.routing_reads(db).find_dispatches(unit=device_id, limit=20)
        if unit and user.can("events.view")
        else [],
        has_evidence=queries.has_evidence(db, device_id),
        command_names=[name for name, permission in commands.PERMISSION.items() if user.can(permission)],
        commands=commands.list_for(db, device_id),
    )


@blueprint.post("/api/v1/devices/<device_id>/commands")
@require(None)
def send_command(device_id: str):
    sent = body(CommandBody)
    name, args = sent.name, sent.args
    permission = commands.PERMISSION.get(name)
    user = current_user()
    if permission is not None and not user.can(permission):
        return _error(f"your role ({user.role}) may not send {name}: needs {permission}", 403)
    try:
        row = services().operations.send_command(device_id, name, args, user.username)
    except commands.CommandError as exc:
        return _error(str(exc), exc.status)
    return jsonify(row), 202


@blueprint.get("/api/v1/devices/<device_id>/commands")
@require("devices.view")
def list_commands(device_id: str):
    _device_or_404(device_id)
    limit = COMMANDS_LIMIT.read()
    return jsonify(commands=commands.list_for(central().db(), device_id, limit))


@blueprint.get("/api/v1/devices/<device_id>/evidence")
@require("devices.view")
def verify_evidence(device_id: str):
    """Check the badge's whole evidence chain and every recording central holds (audited)."""
    _device_or_404(device_id)
    db = central().db()
    report = evidence.chain_report(db, services().media.objects, device_id)  # folder or bucket
    report["summary"] = evidence.describe(report)
    for problem in report["problems"]:  # "what": the English; "said": in the reader's language
        problem["said"] = i18n.evidence_finding(problem)
    audit.append(
        db,
        current_user().username,
        "evidence.verify",
        f"device:{device_id}",
        evidence.audit_detail(report),
    )
    return jsonify(report)


def _error(message: str, status: int):
    response = jsonify(error=message)
    response.status_code = status
    return response
