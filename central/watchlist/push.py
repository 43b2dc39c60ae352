"""Central sends the site's watchlist to every camera with face matching on, by itself: on every change (an
enrolment, edit, removal or an entry's expiry), to every camera that turns up, and again before the bundle
lapses (``REISSUE_BEFORE``), so that no person has to. A camera revoked, turned off for faces, or left with an
empty watchlist is sent a wipe instead.

Least privilege: the bundle is signed with the site's watchlist key, which central holds (``[watchlist]
signing_key``) and the cameras accept for the watchlist alone; it travels retained on each camera's own
``down/watchlist`` topic, which the broker's ACL lets that camera alone read, so a camera that comes back later
still gets it and nobody else ever does. A wipe (``bundle`` null) replaces the retained bundle at the broker
too.

What was last sent to each camera is kept in ``watchlist_pushes``; what a camera should hold is worked out
afresh on each round from the database (the entries, the devices' status and revocations), so every path that
changes it is covered without hooks in each of them. Every push and wipe is audited.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from pathlib import Path

from kuzet.central import alerts
from kuzet.central.auth import audit
from kuzet.central.context import Central
from kuzet.central.store import portable
from kuzet.central.watchlist import bundle, schema
from kuzet.shared import messages, timeutil, topics
from kuzet.shared.messages import WatchlistPush

log = logging.getLogger(__name__)

ACTOR = "central"
WIPED = "wiped"  # the fingerprint recorded for a camera sent a wipe
# Sent again when what a camera holds lapses within this: twice a day for the 24-hour bundle.
REISSUE_BEFORE = bundle.VALIDITY / 2
TABLE = "watchlist_pushes"  # central/watchlist/schema.py
TOO_LARGE = "watchlist_too_large"  # the alert's condition


class WatchlistKeyError(RuntimeError):
    """The watchlist signing key cannot be used; the message says why."""


def load_signing_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise WatchlistKeyError(f"the watchlist signing key {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise WatchlistKeyError(f"the watchlist signing key {path} is not an Ed25519 key")
    return key


def _faces_cameras(db) -> dict[str, str]:
    """{device: site} of every camera not revoked whose status says it matches faces (any ``watchlist``)."""
    rows = portable.execute(
        db,
        "SELECT device_id, site FROM devices WHERE revoked_at IS NULL AND site IS NOT NULL"
        f" AND {portable.json_member(db, 'status', 'watchlist')} IS NOT NULL",
    ).fetchall()
    return dict(rows)


def _fingerprint(data) -> str:
    """What makes two watchlists the same for a camera: the rows and the threshold, not version or expiry."""
    digest = hashlib.sha256(repr((data.entry_ids, data.threshold)).encode())
    digest.update(data.embeddings.astype("<f4").tobytes())
    return digest.hexdigest()


def _due(last_expiry: str, data, now: datetime) -> bool:
    """Whether the same watchlist must be sent again: what the camera holds lapses within
    ``REISSUE_BEFORE`` and a new bundle would last longer (not when an entry's own expiry bounds both)."""
    held_until = timeutil.from_wire(last_expiry)
    return held_until - now < REISSUE_BEFORE and data.expires_at > held_until


class WatchlistPusher:
    """``run_once`` is one round; central's service runs it every ``[watchlist] check_s``."""

    def __init__(self, central: Central, private_key):
        self.central, self.private_key = central, private_key

    def run_once(self, now: datetime | None = None) -> list[str]:
        """One round: push or wipe what each camera should have and has not been sent; the devices sent to."""
        now = now or timeutil.utc_now()
        db = self.central.db()
        schema.ensure(db)
        sent = {
            row[0]: row[1:]
            for row in portable.execute(db, f"SELECT device_id, fingerprint, expires_at FROM {TABLE}")
        }
        targets = _faces_cameras(db)
        data = bundle.watchlist_data(db, now=now)
        fingerprint = _fingerprint(data) if data.entry_ids else WIPED
        payload_of: dict[str, bytes] = {}
        done = []
        for device, site in targets.items():
            last_fingerprint, last_expiry = sent.get(device, (None, None))
            if last_fingerprint == fingerprint and (fingerprint == WIPED or not _due(last_expiry, data, now)):
                continue
            if fingerprint == WIPED and last_fingerprint is None:
                continue  # never sent one: nothing to wipe
            if fingerprint == WIPED:
                self._wipe(db, device, site, "the watchlist is empty or lapsed")
            else:
                if "bundle" not in payload_of:
                    payload_of["bundle"] = bundle.bundle_bytes(data, self.private_key)
                if not self._push(db, device, site, data, fingerprint, payload_of["bundle"]):
                    continue
            done.append(device)
        # Cameras sent a watchlist that should no longer hold one: revoked, faces off, gone from the registry.
        for device, site in portable.execute(
            db, f"SELECT device_id, site FROM {TABLE} WHERE fingerprint != ?", [WIPED]
        ).fetchall():
            if device not in targets:
                self._wipe(
                    db, device, site, "the device no longer takes the watchlist (revoked or faces off)"
                )
                done.append(device)
        return done

    def _push(self, db, device: str, site: str, data, fingerprint: str, signed: bytes) -> bool:
        message = WatchlistPush(device=device, bundle=base64.b64encode(signed).decode("ascii"))
        payload = messages.encode(message)
        limit = messages.MAX_PAYLOAD_BYTES["watchlist"]
        if len(payload) > limit:
            # Too many embeddings for one message: the cameras keep what they hold until it lapses, and the
            # operators are told (one open alert per camera, counted on every try).
            message = alerts.say("watchlist_too_large", rows=len(data.entry_ids))
            with portable.transaction(db):
                row = alerts.raise_for_device(db, "warning", message, device, TOO_LARGE)
            self.central.hub.publish("alert", row)
            return False
        self.central.publish(topics.down(site, device, "watchlist"), payload, retain=True)
        self._record(db, device, site, fingerprint, data.version, timeutil.to_wire(data.expires_at))
        audit.append(
            db,
            ACTOR,
            "watchlist.pushed",
            f"device:{device}",
            {"version": data.version, "entries": len(set(data.entry_ids)), "rows": len(data.entry_ids)},
        )
        return True

    def _wipe(self, db, device: str, site: str, reason: str) -> None:
        payload = messages.encode(WatchlistPush(device=device, bundle=None, reason=reason))
        self.central.publish(topics.down(site, device, "watchlist"), payload, retain=True)
        self._record(db, device, site, WIPED, None, None)
        audit.append(db, ACTOR, "watchlist.wiped", f"device:{device}", {"reason": reason})

    def _record(self, db, device: str, site: str, fingerprint: str, version, expires_at) -> None:
        with portable.transaction(db):
            portable.execute(
                db,
                f"INSERT INTO {TABLE} (device_id, site, fingerprint, version, expires_at, pushed_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET site = excluded.site,"
                " fingerprint = excluded.fingerprint, version = excluded.version,"
                " expires_at = excluded.expires_at, pushed_at = excluded.pushed_at",
                [device, site, fingerprint, version, expires_at, timeutil.now_wire()],
            )


def pusher_for(central: Central) -> WatchlistPusher | None:
    """The pusher where ``[watchlist] signing_key`` is set (WatchlistKeyError if it is unusable)."""
    key = central.config.watchlist.signing_key
    if key is None:
        log.info("[watchlist] signing_key is not set: central sends the cameras no watchlist")
        return None
    return WatchlistPusher(central, load_signing_key(key))
