"""Signed updates on the device: ``install(bundle_path, site_public_key, install_dir) -> InstallResult``,
``rollback``, and ``fetch`` to bring a bundle to the device from a URL or a local path."""

from edge.updates.fetch import FetchError, fetch_bundle
from edge.updates.installer import InstallResult, current_version, install, install_verified, rollback

__all__ = [
    "FetchError",
    "InstallResult",
    "current_version",
    "fetch_bundle",
    "install",
    "install_verified",
    "rollback",
]
