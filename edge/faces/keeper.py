"""The camera's watchlist lifecycle: a ``watchlist`` bundle from central (``down/watchlist``), verified with the
site's watchlist key, stored encrypted and put to use, replaced by the next one; wiped at once when central
says so (revoked, empty) and when it lapses; and what the status says about it."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from kuzet.edge.faces.vault import VaultError, WatchlistVault
from kuzet.edge.faces.watch import FaceWatch
from kuzet.edge.updates.installer import InstallResult
from kuzet.shared import timeutil
from kuzet.shared import watchlist as wire
from kuzet.shared.messages import WatchlistPush

log = logging.getLogger(__name__)

KIND = "watchlist"
SEALED = "watchlist.sealed"  # in the camera's [storage] dir


class WatchlistKeeper:
    def __init__(self, vault: WatchlistVault, watch: FaceWatch, public_key_file: Path | None):
        self.vault, self.watch, self.public_key_file = vault, watch, public_key_file
        watch.set_watchlist(vault.load())

    def receive(self, message: WatchlistPush) -> InstallResult:
        """A watchlist or a wipe from central: verified, then installed; or the sealed copy deleted."""
        if message.bundle is None:
            self.wipe()
            log.info("watchlist wiped on central's word: %s", message.reason)
            return InstallResult(True, f"watchlist wiped: {message.reason}", kind=KIND)
        outcome = self.install(base64.b64decode(message.bundle))
        (log.info if outcome.ok else log.warning)("%s", outcome.message)
        return outcome

    def install(self, signed: bytes) -> InstallResult:
        from kuzet.shared.bundles import SignatureError, load_public_key, verify_update_bytes

        if self.public_key_file is None:
            return InstallResult(
                False,
                "refused: no watchlist key on this camera ([faces] watchlist_key)",
                kind=KIND,
                refused=True,
            )
        try:
            verified = verify_update_bytes(signed, load_public_key(self.public_key_file))
        except (SignatureError, OSError, ValueError) as exc:
            return InstallResult(False, f"refused: {exc}", kind=KIND, refused=True)
        if verified.manifest.kind != KIND:
            return InstallResult(
                False,
                f"refused: a {verified.manifest.kind} bundle on the watchlist topic",
                kind=KIND,
                refused=True,
            )
        previous = self.watch.watchlist
        if previous is not None and verified.manifest.version <= previous.version:
            # the retained copy again after a reconnect, or an older one: what is in use stays
            return InstallResult(True, f"watchlist {previous.version} already in use", kind=KIND)
        return self.store(verified)

    def store(self, verified) -> InstallResult:
        """Seal and use a verified ``watchlist`` bundle."""
        raw = verified.files.get(wire.FILE)
        if raw is None or len(verified.files) != 1:
            return InstallResult(
                False, f"refused: a watchlist bundle holds {wire.FILE} alone", kind=KIND, refused=True
            )
        previous = self.watch.watchlist
        try:
            watchlist = self.vault.store(raw)
        except (VaultError, wire.WatchlistFormatError) as exc:
            return InstallResult(False, f"refused: {exc}", kind=KIND, refused=True)
        self.watch.set_watchlist(watchlist)
        return InstallResult(
            True,
            f"watchlist {watchlist.version} in use: {len(set(watchlist.entry_ids))} entries until "
            f"{timeutil.to_wire(watchlist.expires_at)}",
            kind=KIND,
            version=watchlist.version,
            previous_version=previous.version if previous is not None else None,
        )

    def state(self) -> str:
        """``current``, or ``none`` (never had one, or it lapsed and was wiped just now)."""
        watchlist = self.watch.watchlist
        if watchlist is not None and watchlist.current():
            return "current"
        if watchlist is not None:
            self.wipe()
        return "none"

    def wipe(self) -> None:
        self.watch.set_watchlist(None)  # out of use first, then off the disk
        self.vault.wipe()


def keeper_for(
    storage: Path, device_key: Path | None, device_id: str, watch: FaceWatch, public_key_file: Path | None
) -> WatchlistKeeper:
    vault = WatchlistVault(storage / SEALED, device_key, device_id)
    return WatchlistKeeper(vault, watch, public_key_file)
