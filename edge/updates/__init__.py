"""Signed updates on the device: ``install(bundle_path, site_public_key, install_dir) -> InstallResult``."""

from edge.updates.installer import InstallResult, install, rollback

__all__ = ["InstallResult", "install", "rollback"]
