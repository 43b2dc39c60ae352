"""Helpers for tests against site-init's broker: the TLS verdict of a connection attempt."""

from __future__ import annotations

import socket
import ssl

from kuzet.shared.config import TlsSection

SITE = "pavlodar"  # the site the provisioning tests make


def tls_alert(tls: TlsSection, port: int, host: str = "localhost") -> str | None:
    """The TLS alert the broker answers a client holding ``tls`` with (e.g. ``SSLV3_ALERT_CERTIFICATE_REVOKED``),
    or None when it accepts the certificate.

    With TLS 1.3 the broker judges the client's certificate after the client finished its handshake, so the
    verdict is the first read: an alert, or silence (the broker waits for MQTT's CONNECT). A broker that is
    down raises ConnectionRefusedError: never mistaken for a refusal.
    """
    context = ssl.create_default_context(cafile=str(tls.ca))
    if tls.cert is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    raw = socket.create_connection((host, port), timeout=5)
    try:
        with context.wrap_socket(raw, server_hostname=host) as conn:
            conn.settimeout(1.0)
            conn.recv(1)
    except TimeoutError:
        return None
    except ssl.SSLError as exc:
        return exc.reason
    finally:
        raw.close()
    return "closed without an alert"
