"""The watchlist reaches a camera as a signed bundle through ``install_update``: verified, kept only encrypted
under the device's key, replaced by the next one, wiped when it lapses or cannot be read; a bundle from another
key changes nothing."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuzet.central.watchlist.bundle import write_bundle
from kuzet.edge.camera.updates import CameraUpdates
from kuzet.edge.faces.config import FacesSection
from kuzet.edge.faces.keeper import keeper_for
from kuzet.edge.faces.vault import WatchlistVault
from kuzet.edge.faces.watch import FaceWatch
from kuzet.edge.updates.config import UpdatesSection
from kuzet.shared import ids, timeutil
from kuzet.shared.watchlist import WatchlistData

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")


def pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def camera(tmp_path):
    site_key = Ed25519PrivateKey.generate()
    public = tmp_path / "update.pub"
    public.write_bytes(
        site_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    device_key = tmp_path / "device.key"
    device_key.write_bytes(pem(Ed25519PrivateKey.generate()))
    updates = CameraUpdates(UpdatesSection(public_key=public, install_dir=tmp_path / "updates"), None)
    watch = FaceWatch(FacesSection(enabled=True))
    keeper = keeper_for(tmp_path / "state", device_key, "cam-1", watch)
    updates.watchlist_keeper = keeper
    return updates, watch, keeper, site_key


def data(version: str, rows: int, hours: float = 24.0) -> WatchlistData:
    rng = np.random.default_rng(rows)
    return WatchlistData(
        version,
        timeutil.utc_now() + timedelta(hours=hours),
        0.55,
        tuple(ids.new_id() for _ in range(rows)),
        rng.normal(size=(rows, 128)).astype(np.float32),
    )


def install(updates, tmp_path, site_key, watchlist: WatchlistData):
    bundle = tmp_path / f"watchlist-{watchlist.version}.tar"
    write_bundle(watchlist, site_key, bundle)
    outcome, candidate = updates.install({"path": str(bundle)}, None, None)
    assert candidate is None  # nothing of the configuration changes
    return outcome


def test_a_signed_watchlist_is_used_and_kept_only_encrypted(camera, tmp_path):
    updates, watch, keeper, site_key = camera
    first = data("2026.12.05-1", 3)
    outcome = install(updates, tmp_path, site_key, first)
    assert outcome.ok and outcome.version == first.version
    assert watch.watchlist.entry_ids == first.entry_ids and watch.watchlist.threshold == 0.55
    assert keeper.state() == "current"

    sealed = keeper.vault.path.read_bytes()
    assert all(entry.encode() not in sealed for entry in first.entry_ids)
    assert first.embeddings.tobytes()[:64] not in sealed
    assert not (tmp_path / "updates" / "watchlist").exists()  # never unpacked in the clear

    second = data("2026.12.05-2", 1)
    assert install(updates, tmp_path, site_key, second).ok
    assert watch.watchlist.entry_ids == second.entry_ids  # replaced, not added to
    assert [p.name for p in keeper.vault.path.parent.iterdir()] == [keeper.vault.path.name]

    # the camera restarting reads it back; another device's key cannot, and the unusable file is wiped
    assert (
        WatchlistVault(keeper.vault.path, keeper.vault.device_key, "cam-1").load().entry_ids
        == second.entry_ids
    )
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pem(Ed25519PrivateKey.generate()))
    assert WatchlistVault(keeper.vault.path, other_key, "cam-1").load() is None
    assert not keeper.vault.path.exists()


def test_a_lapsed_watchlist_is_wiped_and_the_status_says_none(camera, tmp_path):
    updates, watch, keeper, site_key = camera
    assert keeper.state() == "none"  # never had one
    assert install(updates, tmp_path, site_key, data("1", 2)).ok
    later = timeutil.utc_now() + timedelta(hours=25)
    assert keeper.vault.load(now=later) is None and not keeper.vault.path.exists()
    watch.set_watchlist(data_as_watchlist(data("2", 2, hours=-1)))
    assert keeper.state() == "none" and watch.watchlist is None


def test_a_bundle_from_another_key_or_already_lapsed_changes_nothing(camera, tmp_path):
    updates, watch, keeper, site_key = camera
    assert install(updates, tmp_path, site_key, data("1", 2)).ok
    kept = watch.watchlist
    forged = install(updates, tmp_path, Ed25519PrivateKey.generate(), data("2", 5))
    assert not forged.ok and forged.refused and "signature" in forged.message
    lapsed = install(updates, tmp_path, site_key, data("3", 5, hours=-1))
    assert not lapsed.ok and "lapsed" in lapsed.message
    assert watch.watchlist is kept


def data_as_watchlist(d: WatchlistData):
    from kuzet.edge.faces.watchlist import Watchlist

    return Watchlist(d.version, d.entry_ids, d.embeddings, d.expires_at, d.threshold)
