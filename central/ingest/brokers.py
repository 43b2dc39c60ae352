"""Central's MQTT links: one to every broker of ``[mqtt] brokers`` at once.

A site's primary and standby brokers do not bridge: a device publishes to whichever it is connected to, so
ingest subscribes on all of them, with the same client id and its own persistent session on each. What two
brokers both deliver (a device's outbox resending after a failover) is stored once: ingest is idempotent by
message id. Each message remembers the broker it came on, so that its PUBACK goes back there after the
commit, and central's commands and dispatches go to the broker their device was last heard on (to every
broker while that is not known yet: the device keeps each id once).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from kuzet.central.ingest.batch import Incoming
from kuzet.central.ingest.mqtt_client import BulkReceiveClient
from kuzet.central.ingest.runtime import wire_time
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

RECONNECT_MAX_S = 5
# handler(topic, payload, message, broker): broker is the index in [mqtt] brokers it arrived from
Handler = Callable[[str, bytes, object, int], None]


class BrokerLinks:
    def __init__(self, settings: MqttSection, client_id: str):
        self.client_id = client_id
        self.links = [
            Link(
                settings.model_copy(update={"brokers": [url], "url": url}),
                client_id,
                persistent_session=True,
                client_class=BulkReceiveClient,
                # a message's PUBACK leaves only after the transaction that stored it has committed
                manual_ack=True,
            )
            for url in settings.brokers
        ]
        if len(self.links) > 1:
            # A restarted primary must have central's subscription back before devices return to it
            # ([mqtt] return_to_primary_s): retry it often rather than after paho's backoff of up to 30 s.
            for link in self.links:
                link.client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        self.subscribed = AllSet([link.subscribed for link in self.links])
        # time.time() of the last commit of a message from each broker (BrokerSession's ``stored_at``)
        self.last_commit: list[float | None] = [None] * len(self.links)
        self._last_heard: dict[str, int] = {}  # device id -> broker index; written on paho's threads
        self.stale_retained = 0  # retained messages dropped: from a broker their device had left

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        for index, link in enumerate(self.links):
            link.subscribe(topic_filter, self._heard_on(index, handler), qos=1)

    def _heard_on(self, index: int, handler: Handler):
        if len(self.links) == 1:
            return lambda topic, payload, message: handler(topic, payload, message, 0)

        def received(topic: str, payload: bytes, message) -> None:
            parts = topic.split("/", 4)  # kuzet/v1/<site>/<device>/up/...
            device = parts[3] if len(parts) > 3 else ""
            if not message.retain:
                self._last_heard[device] = index
            elif self._last_heard.get(device, index) != index:
                # A retained message (a device's availability) is the broker's memory, sent again on every
                # subscribe: from a broker the device has since left for another, it is stale.
                if message.qos:
                    self.links[index].client.ack_many([(message.mid, self.connection(index))])
                self.stale_retained += 1
                return
            handler(topic, payload, message, index)

        return received

    def connection(self, broker: int) -> int:
        return self.links[broker].client.connection

    def start(self) -> None:
        for link in self.links:
            link.start(wait_s=None)

    def stop(self) -> None:
        for link in self.links:
            link.stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """To a device (``kuzet/v1/<site>/<device>/down/...``) through the broker it was last heard on, or
        through every broker when that is not known or central is not connected to it now."""
        parts = topic.split("/", 4)
        broker = self._last_heard.get(parts[3]) if len(parts) > 3 else None
        if broker is not None and not self.links[broker].connected.is_set():
            broker = None
        for index, link in enumerate(self.links):
            if broker is None or broker == index:
                link.publish(topic, payload)

    def publish_everywhere(self, topic: str, payload: bytes, retain: bool = False) -> None:
        for link in self.links:
            link.publish(topic, payload, qos=1, retain=retain)

    def acknowledge(self, batch: Iterable[Incoming]) -> None:
        """PUBACK committed messages, each to the broker it came from."""
        by_broker: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for incoming in batch:
            by_broker[incoming.broker].append((incoming.mid, incoming.connection))
        now = time.time()
        for broker, received in by_broker.items():
            self.last_commit[broker] = now
            self.links[broker].client.ack_many(received)


def broker_health(links: list[Link], settings: MqttSection) -> tuple[list[str], dict]:
    """Problems for /healthz (one per broker that is down or has not taken the subscription) and the state of
    each of ``links``; before ingest has started (no links), every broker of ``settings`` is down."""
    problems, brokers = [], []
    for index, url in enumerate(settings.brokers):
        link = links[index] if links else None
        connected = link is not None and link.connected.is_set()
        subscribed = link is not None and link.subscribed.is_set()
        if not connected:
            problems.append(f"not connected to the MQTT broker at {url}")
        elif not subscribed:
            problems.append(f"connected to {url}, but it has not acknowledged the subscription")
        since = wire_time(link.changed_at) if link is not None and link.changed_at else None
        brokers.append({"url": url, "connected": connected, "subscribed": subscribed, "since": since})
    state = {
        "connected": all(b["connected"] for b in brokers),
        "subscribed": all(b["subscribed"] for b in brokers),
        "since": max((b["since"] for b in brokers if b["since"]), default=None),
        "brokers": brokers,
    }
    return problems, state


class AllSet:
    """Set when every one of several ``threading.Event`` is (each link has acknowledged the subscription)."""

    def __init__(self, events: list[threading.Event]):
        self._events = events

    def is_set(self) -> bool:
        return all(event.is_set() for event in self._events)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self._events:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(left):
                return False
        return True
