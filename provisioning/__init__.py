"""Bringing devices into service and out of it: the site CA and broker configuration (``site_init``, ``ca``,
``broker_config``), device identities and bundles (``device``, ``bundle``, ``service``, ``image``, ``flash``,
``disks``, ``qr``), central's device API (``central_api``), revocation (``revoke``) and signed updates
(``signing``; the device side is ``edge.updates`` and ``edge.camera.updates``). ``cli`` and ``commands`` are
``kuzet provision``."""
