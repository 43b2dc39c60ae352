"""The site's watchlist as a signed ``watchlist`` update bundle for the cameras: entry ids and embeddings of the
current entries only (no names, photos or case details), the site's threshold, and a short validity so that a
camera cut off from central (revoked, stolen) stops matching within ``validity``.

Signed with the site's watchlist key (Ed25519, made by ``kuzet provision site-init`` for central alone): the
cameras accept a ``watchlist`` bundle signed with it and nothing else, and never a model or configuration
signed with it. The bundle layout is shared/bundles.py's; central/watchlist/push.py sends it to each camera.
"""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

from kuzet.central.watchlist import entries
from kuzet.models.faces.matching import DEFAULT_MATCH_THRESHOLD
from kuzet.shared import bundles, timeutil
from kuzet.shared import watchlist as wire

VALIDITY = timedelta(hours=24)  # re-issued daily (and on every change); a camera not reached lapses


def watchlist_data(
    db, threshold: float = DEFAULT_MATCH_THRESHOLD, now: datetime | None = None
) -> wire.WatchlistData:
    now = now or timeutil.utc_now()
    entry_ids, embeddings, earliest = entries.current_embeddings(db, timeutil.to_wire(now))
    expires = now + VALIDITY
    if earliest is not None:
        expires = min(expires, timeutil.from_wire(earliest))
    version = now.strftime("%Y%m%d.%H%M%S.%f")  # rises with time: the installer refuses older versions
    return wire.WatchlistData(version, expires, threshold, tuple(entry_ids), embeddings)


def bundle_bytes(data: wire.WatchlistData, private_key) -> bytes:
    """``data`` signed into a bundle with the site's Ed25519 watchlist key (a cryptography private key)."""
    body = wire.encode(data)
    manifest = bundles.Manifest(
        kind="watchlist",
        version=data.version,
        created_at=timeutil.now_wire(),
        files={wire.FILE: {"sha256": bundles.sha256_bytes(body), "size": len(body)}},
        description=f"watchlist: {len(set(data.entry_ids))} entries",
    )
    manifest_bytes = manifest.to_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in (
            (bundles.MANIFEST, manifest_bytes),
            (bundles.SIGNATURE, private_key.sign(manifest_bytes)),
            (bundles.FILES + wire.FILE, body),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_bundle(data: wire.WatchlistData, private_key, out: Path) -> None:
    """``bundle_bytes`` written to ``out`` (for a look at what a camera gets; central sends it itself)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bundle_bytes(data, private_key))
