"""Bringing devices into service and out of it: the site CA and broker configuration (``site_init``, ``ca``,
``broker_config``), device identities and bundles (``device``, ``bundle``, ``service``, ``image``, ``flash``,
``disks``, ``qr``), central's device API (``central_api``), revocation (``revoke``) and signed updates
(``signing`` creates and signs bundles; their format and verification are ``shared.bundles``, the device
side is ``edge.updates``). ``cli`` and ``commands`` are
``kuzet provision``."""
