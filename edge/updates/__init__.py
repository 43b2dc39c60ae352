"""Signed updates on the device: ``install(bundle_path, site_public_key, install_dir) -> InstallResult``,
``rollback``, and ``fetch`` to bring a bundle to the device from a URL or a local path. ``device`` is what
every kind of device shares on top (its ``[updates]`` section is ``config.UpdatesSection``): installed versions
over the configuration file, and the ``install_update`` / ``rollback_update`` commands.

The names below are imported on first use: a device loads the downloader (``http.client``, ~1 MB) and the
signature check (``cryptography``, ~8 MB) only when an update comes."""

import importlib

_WHERE = {
    "FetchError": "edge.updates.fetch",
    "fetch_bundle": "edge.updates.fetch",
    "InstallResult": "edge.updates.installer",
    "current_version": "edge.updates.installer",
    "install": "edge.updates.installer",
    "install_verified": "edge.updates.installer",
    "rollback": "edge.updates.installer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
