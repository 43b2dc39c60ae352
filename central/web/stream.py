"""The live streams (server-sent events) that keep every open page current without reloads.

Each open page holds one subscription to ``central.hub`` and one server thread of its own (``[http] streams``
of them at most, beside the request threads: a page beyond is refused for now and its browser tries again).
An update is passed on only to users allowed to see its channel; events are re-read from the database so that
every page gets the same full row, whatever the publisher put in the update; that message is made once, by
the first stream to send it, and shared by the others (alerts and devices carry words: once per language). The triage board asks for its incidents besides
(``?with=incidents``: ``central.web.board``'s pushes). A stream stays open all shift, so the account behind it is re-read every
``SSE_RECHECK_S``: a logged-out session, a disabled account (or revoked token) loses its stream, a changed
role its channels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, g, jsonify, request, session
from flask_babel import force_locale, get_locale
from pydantic_core import to_json

from kuzet.central.auth import sessions, tokens, users
from kuzet.central.live import Update
from kuzet.central.store import queries
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.params import refuse
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("stream", __name__)

CHANNEL_PERMISSION = {
    "event": "events.view",
    "device": "devices.view",
    "unit": "map.view",
    "dispatch": "events.view",
    "dead_letter": "dead_letters.view",
    "alert": "events.view",  # routing's alerts: no patrol free, a dispatch escalated
    "command": "devices.view",  # commands to devices and their results
    "live": "events.media",  # live video frames: only on a viewer's own stream (live.py), never on the page's
    "incidents": "events.view",  # the triage board's changed incidents (central.web.board)
}
ON_REQUEST_ONLY = {"live", "incidents"}  # too heavy for every open page: a viewer asks for it
ASKED_BY_PAGES = {"incidents"}  # what a page's stream carries when the page asks (?with=...)
MAX_UPDATES_PER_WRITE = 500
IN_READERS_WORDS = {
    "alert",
    "device",
}  # said in each reader's language: shared only by streams in the same one


def _in_words(app, locale: str) -> Callable[[str, dict], dict]:
    """An alert ("text") or a device ("problem_words") with its words in the stream's reader's language, made
    outside the request."""

    def shape(channel: str, row: dict) -> dict:
        with app.app_context(), force_locale(locale):
            if channel == "alert":
                return {**row, "text": i18n.alert_text(row)}
            return {**row, "problem_words": i18n.problem_words(row)}

    return shape


def _shape(db, channel: str, data: dict, in_words: Callable[[str, dict], dict]) -> dict | None:
    if channel == "event" and data.get("event_id"):
        # Ingest publishes the stored row as the page shows it (events.rows); others publish the event's id
        # alone, and the row is read here.
        return data if "status" in data else queries.get_event(db, data["event_id"])
    if channel == "device" and data.get("device_id"):
        row = queries.get_device(db, data["device_id"])
        return in_words(channel, row) if row else data
    if channel == "alert":
        return in_words(channel, data)
    return data


def _account_check() -> Callable[[object], users.User | None]:
    """How to re-read the account this request acts as, from another thread later on."""
    if g.get("via_token"):
        token = request.headers.get("Authorization", "")[len("Bearer ") :].strip()
        return lambda db: tokens.current_account(db, token)
    username, version, sid = current_user().username, session.get("version", 0), session.get("sid")

    def session_account(db):
        user = users.get_user(db, username)
        # A password reset (or disabling) ends the account's sessions, and logging out ends this one (its
        # row on central is gone): the streams opened with it end with them.
        if (
            user is None
            or getattr(user, "session_version", 0) != version
            or not sessions.valid(db, sid, username)
        ):
            return None
        return user

    return session_account


def sse(
    channels_for: Callable[[users.User], set[str]],
    accept: Callable[[Update], bool] = lambda update: True,
    on_end: Callable[[str], None] | None = None,
) -> Response:
    """A server-sent-event response carrying hub updates on ``channels_for(user)`` that ``accept`` lets
    through; ``on_end(why)`` runs on the streaming thread when it ends, however it ends."""
    slots = services().streams
    if not slots.acquire(blocking=False):
        return refuse_busy()
    the_central = central()
    heartbeat = current_app.config["SSE_HEARTBEAT_S"]
    recheck = current_app.config["SSE_RECHECK_S"]
    batch_s = current_app.config["SSE_BATCH_S"]
    closing = services().closing
    account = _account_check()
    channels = channels_for(current_user())
    locale = str(get_locale())
    in_words = _in_words(current_app._get_current_object(), locale)

    def generate() -> Iterator[str]:
        why = "the viewer left"
        try:
            with the_central.hub.subscribe() as subscription:
                yield "retry: 3000\n: connected\n\n"
                db = the_central.db()
                nonlocal channels
                checked = quiet_since = time.monotonic()
                while not closing.is_set():
                    update = subscription.get(timeout=min(heartbeat, recheck))
                    now = time.monotonic()
                    if now - checked >= recheck:
                        checked = now
                        user = account(db)
                        if user is None:
                            why = (
                                "the session was logged out or the account disabled, its password reset "
                                "or its token revoked"
                            )
                            yield f"event: end\ndata: {json.dumps({'reason': why})}\n\n"
                            return
                        channels = channels_for(user)
                    if update is None:
                        if now - quiet_since >= heartbeat:
                            quiet_since = now
                            yield ": keep-alive\n\n"  # also finds out, by failing, that the page has gone
                        continue
                    # What arrives within SSE_BATCH_S goes out in the same write: at thousands of events a
                    # second, or tens to each of many pages, one write (and one wake-up) per update would cost
                    # more than the updates themselves.
                    closing.wait(batch_s)
                    batch = [update]
                    while len(batch) < MAX_UPDATES_PER_WRITE and (more := subscription.get(0)) is not None:
                        batch.append(more)
                    out = []
                    for update in batch:
                        if update.channel not in channels or not accept(update):
                            continue
                        # Made once for every stream, or once per language where it carries words.
                        key = ("message", locale) if update.channel in IN_READERS_WORDS else "message"
                        message = update.shared.get(key)
                        if message is None:
                            message = _message(db, update, in_words)
                            update.shared[key] = message
                        if message:
                            out.append(message)
                    if out:
                        quiet_since = now
                        yield "".join(out)
                why = "central is stopping"
        finally:
            if on_end is not None:
                on_end(why)

    response = Response(
        generate(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(slots.release)  # however the stream ends, once
    return response


def refuse_busy() -> Response:
    """Every stream's thread is taken: 503, and the browser's EventSource tries again (``retry``)."""
    response = jsonify(error=f"{central().config.http.streams} live streams are open already; try again")
    response.status_code = 503
    response.headers["Retry-After"] = "3"
    return response


def _message(db, update: Update, in_words: Callable[[str, dict], dict]) -> str:
    """The update as the stream sends it ("" for an event no longer there)."""
    data = _shape(db, update.channel, update.data, in_words)
    if data is None:
        return ""
    payload = to_json(data, fallback=str).decode()  # json.dumps, at three times the speed
    return f"id: {update.seq}\nevent: {update.channel}\ndata: {payload}\n\n"


def page_channels(user: users.User) -> set[str]:
    return {
        channel
        for channel, permission in CHANNEL_PERMISSION.items()
        if channel not in ON_REQUEST_ONLY and user.can(permission)
    }


@blueprint.get("/api/v1/stream")
@require(None)
def live():
    asked = set(request.args.getlist("with"))
    if asked - ASKED_BY_PAGES:
        refuse(
            f"with: one of {', '.join(sorted(ASKED_BY_PAGES))}, not {', '.join(sorted(asked - ASKED_BY_PAGES))}"
        )

    def channels(user: users.User) -> set[str]:
        return page_channels(user) | {name for name in asked if user.can(CHANNEL_PERMISSION[name])}

    return sse(channels)
