"""Signed updates on the device. ``installer``: ``install(bundle_path, site_public_key, install_dir)``,
``rollback``; ``fetch``: ``fetch_bundle`` brings a bundle to the device from a URL or a local path; ``device``:
what every kind of device shares on top (its ``[updates]`` section is ``config.UpdatesSection``), installed
versions over the configuration file and the ``install_update`` / ``rollback_update`` commands.

Nothing is imported here: a device loads the downloader (``http.client``, ~1 MB) and the signature check
(``cryptography``, ~8 MB) only when an update comes."""
