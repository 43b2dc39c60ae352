"""Helpers for tests against site-init's broker: the TLS verdict of a connection attempt, a raw client with a
certificate."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from kuzet.shared.config import MqttSection, TlsSection

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


class Client:
    """A raw paho client with a certificate: connects, records PUBACK reason codes and what it receives."""

    def __init__(self, mqtt: MqttSection, client_id: str, port: int, protocol=paho.MQTTv5, clean=True):
        extra = {} if protocol == paho.MQTTv5 else {"clean_session": clean}
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **extra
        )
        self.client.tls_set(
            ca_certs=str(mqtt.tls.ca),
            certfile=str(mqtt.tls.cert),
            keyfile=str(mqtt.tls.key),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        self.acks: queue.Queue = queue.Queue()
        self.received: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.on_publish = lambda c, u, mid, reason_code, props: self.acks.put(reason_code)
        self.client.on_message = lambda c, u, message: self.received.put((message.topic, message.payload))
        self.drops: list[str] = []  # why the broker closed the connection, each time it did
        self.client.on_disconnect = self._disconnected
        kwargs = {"clean_start": clean} if protocol == paho.MQTTv5 else {}
        self.client.connect("localhost", port, keepalive=30, **kwargs)
        self.client.loop_start()
        assert self.connected.wait(5), f"{client_id} did not connect"

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.drops.append(str(reason_code))

    def subscribe(self, pattern: str, qos: int = 1) -> None:
        self.client.subscribe(pattern, qos=qos)
        time.sleep(0.3)  # the SUBACK

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False):
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def nothing_but(received: queue.Queue, marker_topic: str) -> list[str]:
    """Everything received up to the marker (delivery is in order: what was refused would come before)."""
    seen = []
    while True:
        topic, _ = received.get(timeout=5)
        if topic == marker_topic:
            return seen
        seen.append(topic)
