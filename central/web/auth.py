"""Log-in, log-out, who the request is from (session cookie or bearer token), and ``require(permission)``.

Other blueprints (routing's included) protect a view with::

    from kuzet.central.web.auth import require, current_user

    @blueprint.post("/api/v1/dispatches")
    @require("dispatch")
    def create_dispatch(): ...
        current_user().username  # the actor for the audit log

A request without a user gets 401 (API, ``/api/``) or is sent to the log-in page; one without the permission
gets 403. Requests with ``Authorization: Bearer <token>`` skip CSRF (a token is not sent by browsers on their
own); session requests that change something need the CSRF token (form field or ``X-CSRFToken`` header). A
change with neither a session nor a token gets its 401 first: there is no session for a forged request to ride
on (the log-in form alone keeps its CSRF check).
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFProtect

from kuzet.central.auth import audit, preferences, sessions, tokens, users
from kuzet.central.auth.ratelimit import LoginLimiter
from kuzet.central.web.services import services

blueprint = Blueprint("auth", __name__)
csrf = CSRFProtect()


def current_user() -> users.User | None:
    return g.get("user")


def is_api_request() -> bool:
    # Machines (tools, Prometheus) get JSON errors and 401s, people get pages and the log-in form.
    return request.path.startswith("/api/") or request.path == "/metrics"


def _refuse(status: int, message: str):
    if is_api_request() or g.get("via_token"):
        response = jsonify(error=message)
        response.status_code = status
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="kuzet"'
        abort(response)
    if status == 401:
        abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
    abort(status, message)


def require(permission: str | None):
    """Decorator: the view needs a logged-in user (or token) whose role has ``permission``; ``None``: any
    logged-in user."""
    if permission is not None and permission not in users.PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                _refuse(401, _("log in first (or send Authorization: Bearer <token>)"))
            if permission is not None and not user.can(permission):
                _refuse(
                    403,
                    _(
                        "your role (%(role)s) may not do this: needs %(permission)s",
                        role=user.role,
                        permission=permission,
                    ),
                )
            return view(*args, **kwargs)

        return wrapper

    return decorate


def load_user() -> None:
    """before_request: find the user, and check CSRF for session requests that change something."""
    central = services().central
    g.user, g.via_token = None, False
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        g.via_token = True
        g.user = tokens.authenticate(central.db(), header[len("Bearer ") :].strip())
        if g.user is None:
            _refuse(401, _("the API token is unknown, revoked, or its account is disabled"))
        return
    username = session.get("user")
    if username:
        db = central.db()
        g.user = users.get_user(db, username)
        # Disabled or deleted since log-in, or its password was reset (which ends every session it had), or
        # logged out: the session must still exist on central, not only in the cookie (a copy of the cookie
        # taken before log-out is worth nothing after it).
        if (
            g.user is None
            or session.get("version", 0) != g.user.session_version
            or not sessions.valid(db, session.get("sid"), username)
        ):
            g.user = None
            session.clear()
    # CSRF guards what a logged-in browser is made to send; a request with no account behind it gets its 401
    # (or the log-in page) from require() first. Logging in itself keeps its check (no login CSRF).
    if request.method not in ("GET", "HEAD", "OPTIONS") and (
        g.user is not None or request.endpoint in ("auth.login", "auth.choose_language")
    ):
        csrf.protect()


def _client_address() -> str:
    return request.remote_addr or "?"


def _safe_next(target: str | None) -> str:
    # Only local paths: a crafted link must not send the operator to another site after log-in.
    if not target or urlsplit(target).netloc or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return url_for("events.queue")
    return target


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    central = services().central
    limiter: LoginLimiter = services().login_limiter
    status = 200
    if request.method == "POST":
        address = _client_address()
        username = request.form.get("username", "").strip()
        wait = limiter.retry_after(address, username)
        if wait and username:  # unlocked by a supervisor (page or command line) since these were counted?
            limiter.unlocked(username, users.last_unlock(central.db(), username))
            wait = limiter.retry_after(address, username)
        if wait:
            flash(
                _("Too many failed log-ins from this computer; try again in %(seconds)s s.", seconds=wait),
                "error",
            )
            response = current_app.make_response((render_template("login.html"), 429))
            response.headers["Retry-After"] = str(wait)
            return response
        try:
            user = users.authenticate(
                central.db(), username, request.form.get("password", ""), source=address
            )
        except users.AuthError as exc:
            limiter.failed(address, username)
            flash(str(exc), "error")
            status = 401
        else:
            limiter.succeeded(address, username)
            language = session.get("language")  # chosen on the log-in page: kept for the account
            session.clear()  # a fresh session: no fixation
            if language in preferences.LANGUAGES:
                session["language"] = language
                if preferences.get(central.db(), user.username).language is None:
                    preferences.update(central.db(), user.username, language=language)
            session.permanent = True
            session["user"] = user.username
            session["version"] = user.session_version
            session["sid"] = sessions.start(central.db(), user.username)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html"), status


@blueprint.post("/logout")
def logout():
    user = current_user()
    db = services().central.db()
    sessions.end(db, session.get("sid"))  # ended on central: a copy of the cookie no longer logs in
    if user is not None:
        audit.append(db, user.username, "logout", f"user:{user.username}", {})
    session.clear()
    return redirect(url_for("auth.login"))


@blueprint.post("/language")
def choose_language():
    """The header's (and the log-in page's) language switcher: remembered with the account, else for the
    session of a visitor not yet logged in."""
    language = request.form.get("language", "")
    if language not in preferences.LANGUAGES:
        abort(400, _("Unknown language %(language)r.", language=language))
    session["language"] = language
    user = current_user()
    if user is not None:
        preferences.update(services().central.db(), user.username, language=language)
    return redirect(_safe_next(request.form.get("next")))
