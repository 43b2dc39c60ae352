"""The camera's watchlist lifecycle: a verified ``watchlist`` bundle stored encrypted and put to use, replaced by
the next one, wiped when it lapses; and what the status says about it."""

from __future__ import annotations

from pathlib import Path

from kuzet.edge.faces.vault import VaultError, WatchlistVault
from kuzet.edge.faces.watch import FaceWatch
from kuzet.edge.updates.installer import InstallResult
from kuzet.shared import timeutil
from kuzet.shared import watchlist as wire

KIND = "watchlist"


class WatchlistKeeper:
    def __init__(self, vault: WatchlistVault, watch: FaceWatch):
        self.vault, self.watch = vault, watch
        watch.set_watchlist(vault.load())

    def __call__(self, verified) -> InstallResult:
        """Install a verified bundle (edge.updates calls this for the ``watchlist`` kind)."""
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
            self.vault.wipe()
            self.watch.set_watchlist(None)
        return "none"


def keeper_for(storage: Path, device_key: Path | None, device_id: str, watch: FaceWatch) -> WatchlistKeeper:
    return WatchlistKeeper(WatchlistVault(storage / "watchlist.sealed", device_key, device_id), watch)
