"""Central's web page and JSON API: ``create_app(central)`` builds the Flask application.

One blueprint per part of the page (auth, events, map, devices, stats, admin, alerts), the JSON API under
``/api/v1/`` with its live stream and device commands, dispatching (``dispatch``), and health/metrics.
Views act through one typed ``Services`` object (``central.web.services``): every change goes through its
``operations`` (central.operations), which acts through the running ``RoutingService`` handed to
``create_app`` (without one the dispatch endpoints answer 503 and the page offers no dispatching).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from kuzet.central.context import Central
from kuzet.central.watchlist import review_web as watchlist_review
from kuzet.central.watchlist import web as watchlist
from kuzet.central.web import (
    admin,
    alerts,
    api,
    auth,
    device_detail,
    devices,
    dispatch,
    events,
    evidence,
    health,
    i18n,
    incidents,
    live,
    mapview,
    shift,
    stats,
    stream,
    tiles,
    units,
    views,
)
from kuzet.central.web.services import KEY, Services


def _secret_key(central: Central) -> bytes:
    """The session-signing secret from ``[http] secret_key_file`` (relative to the data directory), created
    readable by its owner only on first start."""
    path = Path(central.config.http.secret_key_file)
    if not path.is_absolute():
        path = central.data_dir / path
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise RuntimeError(
                f"{path}: the secret key is too short; delete the file to have a new one made"
            ) from None
        return key
    with os.fdopen(descriptor, "wb") as file:
        key = secrets.token_hex(32).encode()
        file.write(key)
    return key


def create_app(
    central: Central, routing_service=None, *, ingest=None, services: Services | None = None
) -> Flask:
    """``routing_service``: the running ``RoutingService`` the dispatch endpoints and buttons act through;
    ``ingest``: the running ingest, for /healthz and /metrics; or ``services``, built by the caller."""
    services = services or Services.for_central(central, routing_service, ingest)
    # Central keeps its files in its data folder; naming it also spares Flask from searching for an instance
    # folder beside a namespace package (`kuzet` has no folder of its own).
    app = Flask(__name__, instance_path=str(central.data_dir.resolve()))
    http = central.config.http
    app.config.update(
        SECRET_KEY=_secret_key(central),
        SESSION_COOKIE_NAME="kuzet_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=http.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=13),  # a twelve-hour shift and a handover
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in auth.load_user, where bearer-token requests are told apart
        WTF_CSRF_TIME_LIMIT=None,  # the page stays open all shift; the token is bound to the session anyway
        WTF_CSRF_SSL_STRICT=http.secure_cookies,
        MAX_CONTENT_LENGTH=1 << 20,
        SSE_HEARTBEAT_S=15.0,
        SSE_RECHECK_S=5.0,  # how often an open live stream re-reads its account (disabled: stream ends)
        # What reaches a live stream this soon after an update goes out with it, in one write: under a city's
        # events each stream thread wakes a few times a second, not once per update (bench/page.py).
        SSE_BATCH_S=0.2,
    )
    app.extensions[KEY] = services
    auth.csrf.init_app(app)
    app.before_request(auth.load_user)
    health.init_metrics(app)
    for module in (
        auth,
        events,
        mapview,
        devices,
        stats,
        admin,
        alerts,
        api,
        device_detail,
        live,
        stream,
        health,
        dispatch,
        tiles,
        units,
        evidence,
        incidents,
        shift,
    ):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(watchlist.blueprint)
    app.register_blueprint(watchlist.api)
    app.register_blueprint(watchlist_review.blueprint)
    i18n.install(app)
    views.install(app)

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return views.error_response(
            400, _("The form or request has no valid CSRF token (%(why)s).", why=error.description)
        )

    return app
