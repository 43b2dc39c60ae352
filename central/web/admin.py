"""Administration pages: accounts and API tokens, the audit log with its chain check, and dead letters."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from kuzet.central.auth import audit, tokens, users
from kuzet.central.store import queries
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.get("/users")
@require("users.read")
def user_list():
    db = central().db()
    can_manage = current_user().can("users.manage")
    return render_template(
        "users.html",
        accounts=users.list_users(db),
        api_tokens=tokens.list_tokens(db) if can_manage else [],
        roles=users.ROLES,
        permissions=users.PERMISSIONS,
        new_token=None,
    )


@blueprint.post("/users")
@require("users.manage")
def create_user():
    form = request.form
    try:
        user, created = users.create_user(
            central().db(),
            form.get("username", "").strip(),
            form.get("password", ""),
            form.get("role", ""),
            form.get("display_name", "").strip(),
            actor=current_user().username,
        )
    except users.AuthError as exc:
        flash(str(exc), "error")
    else:
        message = (
            _("Account %(name)s created (%(role)s).") if created else _("Account %(name)s reset (%(role)s).")
        )
        flash(message % {"name": user.username, "role": i18n.label(i18n.ROLES, user.role)}, "ok")
    return redirect(url_for("admin.user_list"))


@blueprint.post("/users/<username>/disable")
@require("users.manage")
def disable_user(username: str):
    disable = request.form.get("disable", "1") == "1"
    if username == current_user().username and disable:
        flash(_("You cannot disable your own account."), "error")
        return redirect(url_for("admin.user_list"))
    try:
        users.set_disabled(central().db(), username, disable, current_user().username)
    except users.AuthError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.user_list"))


@blueprint.post("/users/<username>/unlock")
@require("users.unlock")
def unlock_user(username: str):
    """Supervisors and admins lift an account's log-in lock-out (audited)."""
    try:
        cleared = users.unlock(central().db(), username, current_user().username)
    except users.AuthError as exc:
        flash(str(exc), "error")
    else:
        limiter = services().login_limiter
        limiter.unlocked(username, users.last_unlock(central().db(), username))
        flash(
            ngettext(
                "Account %(name)s unlocked (%(num)s recent failed log-in cleared).",
                "Account %(name)s unlocked (%(num)s recent failed log-ins cleared).",
                cleared,
                name=username,
            ),
            "ok",
        )
    return redirect(url_for("admin.user_list"))


@blueprint.post("/tokens")
@require("users.manage")
def create_token():
    db = central().db()
    try:
        token = tokens.create_token(
            db, request.form.get("username", ""), request.form.get("name", ""), current_user().username
        )
    except users.AuthError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.user_list"))
    # Shown on this one response and never again.
    return render_template(
        "users.html",
        accounts=users.list_users(db),
        api_tokens=tokens.list_tokens(db),
        roles=users.ROLES,
        permissions=users.PERMISSIONS,
        new_token=token,
    )


@blueprint.post("/tokens/<token_id>/revoke")
@require("users.manage")
def revoke_token(token_id: str):
    if not tokens.revoke(central().db(), token_id, current_user().username):
        flash(_("No such active token."), "error")
    return redirect(url_for("admin.user_list"))


@blueprint.get("/audit")
@require("audit.read")
def audit_log():
    db = central().db()
    filters = {key: request.args.get(key, "").strip() for key in ("actor", "target", "action")}
    try:
        before = int(request.args.get("before") or 0)
    except ValueError:
        before = 0
    entries = audit.entries(db, before_seq=before, limit=100, **{k: v for k, v in filters.items() if v})
    ok, bad_seq = audit.verify(db)
    return render_template("audit.html", entries=entries, filters=filters, chain_ok=ok, bad_seq=bad_seq)


@blueprint.get("/dead-letters")
@require("dead_letters.view")
def dead_letters():
    return render_template("dead_letters.html", letters=queries.dead_letters(central().db()))
