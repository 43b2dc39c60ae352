"""What every page shares: template helpers (the user, permissions, times, severities) and error pages that
answer in JSON under /api/ and in HTML elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from kuzet.central.web.auth import current_user, is_api_request
from kuzet.central.web.services import KEY, services

log = logging.getLogger(__name__)

SEVERITIES = ["critical", "high", "medium", "low", "info"]
STATUSES = ["new", "acknowledged", "assigned", "dispatched", "closed"]


def central():
    return services().central


def error_response(status: int, message: str):
    if is_api_request():
        response = jsonify(error=message)
        response.status_code = status
        return response
    return render_template("error.html", status=status, message=message), status


def install(app: Flask) -> None:
    @app.context_processor
    def _globals():
        user = current_user()
        return {
            "user": user,
            "can": (lambda permission: user is not None and user.can(permission)),
            "site_name": central().config.central.name or _("Kuzet operations centre"),
            "severities": SEVERITIES,
            "statuses": STATUSES,
            # Dispatch buttons only where routing is running: its endpoints answer 503 otherwise.
            "routing_enabled": routing_running(app),
            "open_alerts": _open_alerts(user),
        }

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.response is not None:  # abort(response) from auth and params
            return error.response
        response = current_app.make_response(
            error_response(error.code or 500, error.description or error.name)
        )
        for name, value in error.get_headers():  # e.g. 405's Allow (RFC 9110)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # A bug must not show a stack trace to the operator, nor end the server; the log has the details.
        log.exception("web: %s %s failed", request.method, request.path)
        return error_response(500, _("Something went wrong on central; the error has been logged."))

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


def routing_running(app: Flask) -> bool:
    return app.extensions[KEY].operations.routing_running


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
