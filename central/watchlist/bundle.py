"""The site's watchlist as a signed ``watchlist`` update bundle for the cameras: entry ids and embeddings of the
current entries only (no names, photos or case details), the site's threshold, and a short validity so that a
camera cut off from central (revoked, stolen) stops matching within ``validity``.

Signed with the site's update key (Ed25519), the key the cameras check every update with; the bundle layout is
shared/bundles.py's, so a camera installs it through ``install_update`` like any other update.
"""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from kuzet.central.watchlist import entries
from kuzet.models.faces.matching import DEFAULT_MATCH_THRESHOLD
from kuzet.shared import bundles, timeutil
from kuzet.shared import watchlist as wire

VALIDITY = timedelta(hours=24)  # re-issued daily (and on every change); a camera not reached lapses


def watchlist_data(
    db: sqlite_utils.Database, threshold: float = DEFAULT_MATCH_THRESHOLD, now: datetime | None = None
) -> wire.WatchlistData:
    now = now or timeutil.utc_now()
    entry_ids, embeddings, earliest = entries.current_embeddings(db, timeutil.to_wire(now))
    expires = now + VALIDITY
    if earliest is not None:
        expires = min(expires, timeutil.from_wire(earliest))
    version = now.strftime("%Y%m%d.%H%M%S.%f")  # rises with time: the installer refuses older versions
    return wire.WatchlistData(version, expires, threshold, tuple(entry_ids), embeddings)


def write_bundle(data: wire.WatchlistData, private_key, out: Path) -> bundles.Manifest:
    """Sign ``data`` into a bundle at ``out`` with the site's Ed25519 update key (a cryptography private key)."""
    body = wire.encode(data)
    manifest = bundles.Manifest(
        kind="watchlist",
        version=data.version,
        created_at=timeutil.now_wire(),
        files={wire.FILE: {"sha256": bundles.sha256_bytes(body), "size": len(body)}},
        description=f"watchlist: {len(set(data.entry_ids))} entries",
    )
    manifest_bytes = manifest.to_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        for name, content in (
            (bundles.MANIFEST, manifest_bytes),
            (bundles.SIGNATURE, private_key.sign(manifest_bytes)),
            (bundles.FILES + wire.FILE, body),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(content))
    return manifest
