"""One way to talk MQTT, for every Kuzet process: brokers by URL, TLS, reconnect with backoff, last will,
failover between a primary and standby brokers.

``mqtt://host:1883`` is plain TCP, ``mqtts://host:8883`` is TLS (client certificate from the config for
mutual TLS). Paho reconnects by itself with a backoff of 1-2 s doubling to about 30 s, each link's own draw
(``failover.reconnect_delays``); subscriptions are renewed on
every connect, so a broker restart is survived without help. With several brokers in ``[mqtt] brokers`` the
link moves between them as ``shared/failover.py`` decides (the backoff is capped so that a standby is tried
in time), and goes back to the primary with a clean disconnect (no last will is published).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kuzet.shared.config import MqttSection, broker_url_problem
from kuzet.shared.failover import BrokerChoice, reconnect_delays

log = logging.getLogger(__name__)

# A device's session (its subscriptions and queued QoS 1 messages) outlives a drop for this long.
SESSION_EXPIRY_S = 24 * 3600
# How often the provisioned Mosquitto saves what it holds (provisioning/broker_config.py): a broker that crashes
# loses at most what it acknowledged in this long before the crash, which central has the devices send again
# (central/ingest/session.py).
BROKER_AUTOSAVE_S = 5
# Unacknowledged messages the broker may send a manual-acknowledgement link (MQTT 5 Receive Maximum).
MANUAL_ACK_RECEIVE_MAXIMUM = 65_535
Handler = Callable[[str, bytes], None]


class MqttError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_url(url: str) -> BrokerAddress:
    if problem := broker_url_problem(url):
        raise MqttError(problem)
    parsed = urlparse(url)
    tls = parsed.scheme in ("mqtts", "ssl")
    return BrokerAddress(parsed.hostname, parsed.port or (8883 if tls else 1883), tls)


class Link:
    """A connected MQTT client with topic handlers.

    Handlers run on paho's network thread: they must be quick, and hand slow work to a queue.

    ``subscribed`` is set once the broker has acknowledged every subscription of the current connection: only
    then is nothing published from elsewhere missed. ``start`` and ``subscribe`` wait for it.
    """

    def __init__(
        self,
        settings: MqttSection,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        persistent_session: bool = False,
        client_class: type[paho.Client] = paho.Client,
        manual_ack: bool = False,
    ):
        """``client_class``: paho's Client or a subclass of it (central's ingest receives through one tuned for
        thousands of messages a second). ``manual_ack``: a QoS 1 message is not acknowledged when its handler
        returns; handlers are called ``handler(topic, payload, message)`` and the owner acknowledges
        ``message.mid`` itself once the message is safe (central's ingest: after its commit). A message no
        handler takes, or whose handler raises, is acknowledged at once."""
        self.settings = settings
        self.addresses = [parse_url(url) for url in settings.brokers]
        self.choice = BrokerChoice(settings.brokers, settings.failover_after_s, settings.return_to_primary_s)
        self.client_id = client_id
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._unacknowledged: set[int] = set()  # message ids of SUBSCRIBEs the broker has not answered yet
        self._optional: set[str] = (
            set()
        )  # topic filters a broker may refuse without the link being unsubscribed
        self._optional_mids: set[int] = set()
        self._subscribe_lock = threading.Lock()
        self.changed_at: float | None = None  # time.time() the link last connected or dropped
        self._handlers: list[tuple[str, int, Handler]] = []
        self._matchers: list[Callable[[str], bool]] = []  # one per handler: does a topic match its filter?
        self._persistent = persistent_session
        # Called on paho's thread after each connection with the broker's ``session_present`` (quick only).
        self.on_connect: list[Callable[[bool], None]] = []
        # Called on paho's thread once connected to another broker after losing one, with the URL left and the
        # time.time() it was lost: what it acknowledged shortly before may never reach central (quick only).
        self.on_failover: list[Callable[[str, float], None]] = []
        # time.time() the connection last dropped without a clean DISCONNECT (None again once connected)
        self.lost_at: float | None = None
        self._failed_over_from: tuple[str, float] | None = None
        self._v5 = settings.protocol == "5"
        self._manual_ack = manual_ack
        self.client = client_class(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if self._v5 else paho.MQTTv311,
            clean_session=None if self._v5 else not persistent_session,
            manual_ack=manual_ack,
        )
        # Bounded in-flight window: paho drops messages past 65,535 unacknowledged (MQTT_ERR_QUEUE_SIZE).
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        first, longest = reconnect_delays(settings.failover_after_s, several=len(self.addresses) > 1)
        self.client.reconnect_delay_set(min_delay=first, max_delay=longest)
        self.client.on_pre_connect = self._choose_broker
        self._lifecycle = threading.Lock()  # start, stop and the move back to the primary, one at a time
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        if self.addresses[0].tls:  # all or none (MqttSection checks)
            self._configure_tls()
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _configure_tls(self) -> None:
        tls = self.settings.tls
        if tls is None:
            raise MqttError(
                f"{self.settings.url} is a TLS URL but the config has no [mqtt.tls] section with a CA"
            )
        self.client.tls_set(
            ca_certs=str(tls.ca),
            certfile=str(tls.cert) if tls.cert else None,
            keyfile=str(tls.key) if tls.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )

    # --- lifecycle --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The broker in use, or being tried."""
        return self.choice.url

    @property
    def address(self) -> BrokerAddress:
        return self.addresses[self.choice.index]

    def start(self, wait_s: float | None = 10.0) -> Link:
        """Connect in the background; wait up to ``wait_s`` for the first connection (None: do not wait)."""
        with self._lifecycle:
            self._connect_in_background()
        if self.choice.return_to_primary_s > 0 and len(self.addresses) > 1:
            self._watcher = threading.Thread(target=self._watch_primary, name="mqtt-primary", daemon=True)
            self._watcher.start()
        if wait_s is not None and not self.subscribed.wait(wait_s):
            log.warning(
                "MQTT: not %s %s after %.0f s; retrying in the background",
                "subscribed at" if self.connected.is_set() else "connected to",
                self.url,
                wait_s,
            )
        return self

    def _connect_in_background(self) -> None:
        properties = None
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S if self._persistent else 0
            if self._manual_ack:  # messages wait for a commit before their PUBACK: let many be in flight
                properties.ReceiveMaximum = MANUAL_ACK_RECEIVE_MAXIMUM
        self.client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self.settings.keepalive_s,
            clean_start=not self._persistent if self._v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()

    def _watch_primary(self) -> None:
        """On a standby: check now and then whether the primary accepts connections, and go back to it."""
        while not self._stopping.wait(min(1.0, self.choice.return_to_primary_s)):
            if not (self.connected.is_set() and self.choice.primary_check_due()):
                continue
            primary = self.addresses[0]
            try:  # a TCP handshake only: cheap for the broker, and enough to know it is up again
                socket.create_connection((primary.host, primary.port), timeout=2).close()
            except OSError:
                continue
            with self._lifecycle:
                if self._stopping.is_set():
                    return
                log.info("MQTT: the primary %s is back; leaving %s for it", self.choice.urls[0], self.url)
                # A clean DISCONNECT: the standby publishes no last will ("offline") for us.
                self.client.disconnect()
                self.client.loop_stop()
                self.choice.back_to_primary()
                self._connect_in_background()

    def stop(self, final: tuple[str, bytes] | None = None) -> None:
        """Publish ``final`` (e.g. a retained 'offline') if connected, then disconnect cleanly."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if final is not None and self.connected.is_set():
            info = self.client.publish(final[0], final[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (ValueError, RuntimeError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        # loop_start() opened a socket pair that paho closes only when the client is garbage-collected, and the
        # callbacks tie client and Link into a cycle: a process that starts and stops links (central's tests,
        # a reload) would run out of file descriptors. paho 2.2 has no public call for it.
        self.client._reset_sockets()

    # --- traffic ----------------------------------------------------------------------------------------

    def subscribe(
        self, topic_filter: str, handler: Handler, qos: int = 1, wait_s: float = 5.0, optional: bool = False
    ) -> None:
        """Handle messages on ``topic_filter`` from now on (and after every reconnect). When connected, wait up
        to ``wait_s`` for the broker's acknowledgement (not on paho's own thread, which delivers it).
        ``optional``: what some brokers do not offer (Mosquitto's ``$SYS``): ``subscribed`` does not wait for
        it, and a refusal is noted, not an error."""
        if optional:
            self._optional.add(topic_filter)
        self._handlers.append((topic_filter, qos, handler))
        self._matchers.append(topic_matcher(_strip_share(topic_filter)))
        if self.connected.is_set():
            self._send_subscribe(self.client, topic_filter, qos)
            if threading.current_thread() is not getattr(self.client, "_thread", None):
                self.subscribed.wait(wait_s)

    def _send_subscribe(self, client, topic_filter: str, qos: int) -> None:
        with self._subscribe_lock:
            result, mid = client.subscribe(topic_filter, qos)
            if result == paho.MQTT_ERR_SUCCESS:
                (self._optional_mids if topic_filter in self._optional else self._unacknowledged).add(mid)
                self.subscribed.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info

    # --- paho callbacks ---------------------------------------------------------------------------------

    def _choose_broker(self, client, userdata) -> None:
        """Before each connection attempt (paho's thread): point the client at the broker to try."""
        before = self.choice.index
        url = self.choice.connecting()
        if self.choice.index != before:
            if self.lost_at is not None:  # it had been connected there: it may have lost what it accepted
                self._failed_over_from = (self.choice.urls[before], self.lost_at)
            log.warning(
                "MQTT: %s unreachable for %.0f s; trying %s",
                self.choice.urls[before],
                self.choice.failover_after_s,
                url,
            )
        address = self.addresses[self.choice.index]
        # paho 2.2 (pinned) reads these right after this callback; its public setters refuse while connecting.
        client._host, client._port = address.host, address.port

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT: %s refused the connection: %s%s", self.url, reason_code, _hint(reason_code))
            return
        if self._v5 and getattr(properties, "SharedSubscriptionAvailable", 1) == 0:
            for topic_filter, _, _ in self._handlers:
                if topic_filter.startswith("$share/"):
                    log.error(
                        "MQTT: %s has no shared subscriptions; %s will receive nothing: use a broker that has "
                        "them or do without [ingest] share_group",
                        self.url,
                        topic_filter,
                    )
        sock = client.socket()
        if sock is not None and hasattr(sock, "setsockopt"):
            # Neither paho nor Mosquitto disables Nagle: without this, latency at a steady rate is 10-25 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._subscribe_lock:
            self._unacknowledged.clear()
        for topic_filter, qos, _ in self._handlers:
            self._send_subscribe(client, topic_filter, qos)
        log.info("MQTT: connected to %s as %s", self.url, self.client_id)
        self.choice.connected()
        self.changed_at = time.time()
        self.connected.set()
        if not self._handlers:
            self.subscribed.set()
        for hook in self.on_connect:
            hook(bool(flags.session_present))
        moved, self._failed_over_from = self._failed_over_from, None
        self.lost_at = None  # a later move needs a later loss
        if moved is not None:
            for hook in self.on_failover:
                hook(*moved)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        with self._subscribe_lock:
            optional = mid in self._optional_mids
            self._optional_mids.discard(mid)
        if optional:
            if refused:
                log.info(
                    "MQTT: %s does not offer an optional subscription of %s: %s",
                    self.url,
                    self.client_id,
                    refused,
                )
            return
        if refused:  # stays unsubscribed: whoever waits on ``subscribed`` sees it never came
            log.error("MQTT: %s refused a subscription of %s: %s", self.url, self.client_id, refused)
            return
        with self._subscribe_lock:
            self._unacknowledged.discard(mid)
            if not self._unacknowledged:
                self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.changed_at = time.time()
        self.connected.clear()
        self.subscribed.clear()
        self.choice.lost()
        if reason_code.value != 0:
            self.lost_at = self.changed_at
            log.warning("MQTT: lost %s (%s); reconnecting", self.url, reason_code)

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        taken = False
        for (topic_filter, _, handler), matches in zip(self._handlers, self._matchers, strict=True):
            if matches(topic):
                try:
                    if self._manual_ack:
                        handler(topic, msg.payload, msg)
                        taken = True
                    else:
                        handler(topic, msg.payload)
                except Exception:  # a handler bug must not kill the network thread
                    log.exception("MQTT: handler for %s failed on %s", topic_filter, msg.topic)
        if self._manual_ack and not taken and msg.qos:
            client.ack(msg.mid, msg.qos)  # nobody will: the broker would hold it in flight for ever


def _hint(reason_code) -> str:
    """What a technician can do about a refused connection, where Kuzet knows."""
    if reason_code.value == 0x84 or str(reason_code) == "Unsupported protocol version":
        return (
            " (the broker does not speak this MQTT version; NATS's MQTT listener, for one, has only 3.1.1: set"
            ' [mqtt] protocol = "3.1.1")'
        )
    return ""


def topic_matcher(topic_filter: str) -> Callable[[str], bool]:
    """A test of whether a topic matches ``topic_filter`` (MQTT wildcards ``+`` and ``#``), made once per
    subscription: paho's ``topic_matches_sub`` builds a matcher tree for every message it is asked about."""
    levels = topic_filter.split("/")
    wildcard_first = levels[0] in ("+", "#")

    def matches(topic: str) -> bool:
        if wildcard_first and topic.startswith("$"):
            return False  # "$SYS/..." and the like are never matched by a leading wildcard
        parts = topic.split("/")
        for index, level in enumerate(levels):
            if level == "#":
                return True
            if index >= len(parts) or (level != "+" and level != parts[index]):
                return False
        return len(parts) == len(levels)

    return matches


def _strip_share(topic_filter: str) -> str:
    # "$share/group/a/b" delivers messages whose topic matches "a/b".
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter
