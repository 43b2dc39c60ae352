"""What every page shares: template helpers (the user, permissions, times, severities) and error pages that
answer in JSON under /api/ and in HTML elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kuzet.central.store import registry, workflow
from kuzet.central.web.auth import current_user, is_api_request
from kuzet.shared import timeutil

log = logging.getLogger(__name__)

SEVERITIES = ["critical", "high", "medium", "low", "info"]
STATUSES = ["new", "acknowledged", "assigned", "dispatched", "closed"]


def central():
    return current_app.extensions["kuzet"]


def error_response(status: int, message: str):
    if is_api_request():
        response = jsonify(error=message)
        response.status_code = status
        return response
    return render_template("error.html", status=status, message=message), status


def _short_time(value: str | None) -> str:
    """'2026-11-21T13:05:09.123Z' -> '21 Nov 13:05:09' (UTC, as every time on the page)."""
    if not value:
        return "—"
    try:
        return timeutil.from_wire(value).strftime("%d %b %H:%M:%S")
    except ValueError:
        return value


def install(app: Flask) -> None:
    @app.context_processor
    def _globals():
        user = current_user()
        return {
            "user": user,
            "can": (lambda permission: user is not None and user.can(permission)),
            "site_name": central().config.central.name,
            "severities": SEVERITIES,
            "statuses": STATUSES,
            # Dispatch buttons only where routing is running: its endpoints answer 503 otherwise.
            "routing_enabled": routing_running(app),
            "open_alerts": _open_alerts(user),
        }

    app.jinja_env.filters["short_time"] = _short_time

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.response is not None:  # abort(response) from auth
            return error.response
        return error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # A bug must not show a stack trace to the operator, nor end the server; the log has the details.
        log.exception("web: %s %s failed", request.method, request.path)
        return error_response(500, "something went wrong on central; the error has been logged")

    @app.after_request
    def _headers(response):
        # Everything is served from here: no frame embedding, no third-party scripts.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: " + _tile_origin() + "; media-src 'self'; "
            "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/") or request.path.startswith("/media/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _routing_service(app: Flask):
    """The running ``RoutingService`` (``central.routing.web.attach``), or None where central runs without it."""
    return app.extensions.get("kuzet.routing_service")


def routing_running(app: Flask) -> bool:
    return _routing_service(app) is not None


def close_event(db, event_id: str, actor: str, note: str) -> dict:
    """Close an event with a note; where routing runs, every patrol still on its way there is stood down in
    the same transaction (the badges are told, with the note as the reason)."""
    service = _routing_service(current_app)
    if service is not None:
        return service.close_event(event_id, actor, note)
    return workflow.close(db, event_id, actor, note)


def revoke_device(db, device_id: str, actor: str, reason: str) -> bool:
    """Revoke a device; where routing runs, a badge is taken off its dispatches in the same transaction and
    their events go to the next unit."""
    service = _routing_service(current_app)
    if service is not None:
        return service.revoke(device_id, actor, reason)
    return registry.revoke(db, device_id, actor, reason)


def _open_alerts(user) -> int | None:
    """Unacknowledged alerts for the header's counter (None: the user does not see alerts)."""
    if user is None or not user.can("events.view"):
        return None
    from kuzet.central import alerts

    return alerts.open_count(central().db())


def _tile_origin() -> str:
    tile_url = central().config.map.tile_url
    if not tile_url or tile_url.startswith("/"):
        return ""
    scheme, _, rest = tile_url.partition("://")
    host = rest.split("/", 1)[0].replace("{s}.", "*.")
    return f"{scheme}://{host}"
