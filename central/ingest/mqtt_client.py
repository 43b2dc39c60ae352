"""Paho's client, tuned for central's one subscription that receives everything every device sends.

Paho reads each packet with three ``recv`` calls (command byte, length, body), wakes its own ``select`` with a
socket write for every PUBACK it queues, sends each PUBACK with a ``send`` of its own, and builds several
objects per message (a message with its own lock and condition, MQTT 5 properties, a match against every
per-topic callback). At thousands of messages a second that is most of ingest's network thread, and each of
the system calls releases the interpreter lock, after which the thread waits for the busy ingest writer to
hand it back. This client

- reads the socket 256 KiB at a time and serves paho's small reads from memory;
- takes every complete QoS 0/1 PUBLISH in that buffer in one loop: the topic, packet id and payload are
  sliced out (MQTT 5 properties skipped, not decoded), a light ``Received`` goes to ``on_message``, and the
  PUBACK is queued; anything else (other packets, a packet not yet wholly received, a topic alias) is left to
  paho's own reading, untouched;
- queues the PUBACKs of a burst as one write, sent once the burst has been read.

Made with ``manual_ack=True`` (as ingest makes it), it acknowledges nothing by itself: ``ack_many(received)``
sends the PUBACKs of a committed batch as one write, from the writer thread. ``connection``
counts the connections (raised whenever the socket closes); acknowledgements of messages received on an
earlier connection are not sent, because the broker sends those again on the new one (with the same packet
ids, which the new copies will acknowledge: an old acknowledgement could otherwise acknowledge a newer message
that reuses its packet id). Without ``manual_ack``, acknowledgements follow ``on_message``. Connecting,
subscribing, keep-alives, reconnects and TLS are paho's own. ``on_message`` gets ``Received`` (topic, payload,
qos, retain, dup, mid), which is what ``shared.mqtt.Link`` uses; per-topic callbacks
(``message_callback_add``) are refused. The overrides rest on paho 2.2 internals (pinned in pyproject.toml);
the ingest tests run through this client against a real Mosquitto, plain and with mutual TLS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.client import PUBACK, MQTTErrorCode

READ_BYTES = 256 * 1024  # one recv: some hundreds of event messages
READ_BURST = 5000  # packets read before writes and keep-alives get their turn
_PUBLISH = 0x30


@dataclass(frozen=True, slots=True)
class Received:
    """A PUBLISH as ``on_message`` gets it from this client."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int


class _BufferedSocket:
    """The socket (plain or TLS) with a read buffer. ``pending()`` tells paho's loop that buffered bytes are
    waiting, as an SSL socket's does, so that it reads them without waiting in ``select``."""

    def __init__(self, sock):
        self._sock = sock
        self.data = b""
        self.at = 0  # data[at:] is not read yet

    def recv(self, size: int) -> bytes:
        if self.at >= len(self.data):
            data = self._sock.recv(READ_BYTES)  # BlockingIOError / SSLWantReadError pass through to paho
            if not data:
                return data
            self.data, self.at = data, 0
        chunk = self.data[self.at : self.at + size]
        self.at += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self.data) - self.at + inner

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class BulkReceiveClient(paho.Client):
    def __init__(self, *args, **kwargs):
        self.connection = 0  # raised each time the socket closes: which connection a message arrived on
        self._ack_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _create_socket(self):
        return _BufferedSocket(super()._create_socket())

    def _sock_close(self) -> None:
        with self._ack_lock:  # whatever ack_many queued before this is dropped with the connection's packets
            self.connection += 1
            super()._sock_close()

    def ack_many(self, received: Iterable[tuple[int, int]]) -> int:
        """Acknowledge QoS 1 messages, given as (packet id, connection they arrived on), in one write
        (manual_ack). Those of an earlier connection are skipped: the broker sends them again. Returns how
        many were sent."""
        with self._ack_lock:
            mids = [mid for mid, connection in received if mid and connection == self.connection]
            if not mids or self._sock is None:
                return 0
            packet = b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)
            super()._packet_queue(PUBACK, packet, 0, 1)
        return len(mids)

    def message_callback_add(self, sub, callback) -> None:
        raise NotImplementedError("BulkReceiveClient delivers every message to on_message")

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        for _ in range(READ_BURST):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._in_packet["command"] == 0 and self._take_publishes():
                continue
            rc = self._packet_read()  # paho's way, for one packet: it also refills the buffer
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _take_publishes(self) -> int:
        """Hand on every complete QoS 0/1 PUBLISH at the front of the read buffer; returns how many."""
        buffered = self._sock
        if not isinstance(buffered, _BufferedSocket):
            return 0
        data, at, end = buffered.data, buffered.at, len(buffered.data)
        v5 = self._protocol == paho.MQTTv5
        taken = 0
        while at < end:
            header = data[at]
            qos = (header >> 1) & 3
            if header & 0xF0 != _PUBLISH or qos > 1:
                break
            length, start = _varint(data, at + 1, end)
            if length is None or start + length > end:
                break  # not wholly here yet (or malformed): paho's reading takes it from here
            stop = start + length
            topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
            body = topic_end + (2 if qos else 0)
            if topic_end == start + 2 or body > stop:
                break  # a topic alias, or malformed
            if v5:
                properties, body = _varint(data, body, stop)
                if properties is None:
                    break
                body += properties
                if body > stop:
                    break
            try:
                topic = data[start + 2 : topic_end].decode()
            except UnicodeDecodeError:
                break
            mid = (data[topic_end] << 8) | data[topic_end + 1] if qos else 0
            at = buffered.at = stop  # taken before on_message runs, whatever it does
            self._handle_on_message(
                Received(topic, data[body:stop], qos, bool(header & 1), bool(header & 8), mid)
            )
            if qos and not self._manual_ack:
                self._send_puback(mid)
            taken += 1
        if taken:
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()
        return taken

    def _handle_on_message(self, message) -> None:
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:  # as paho does: logged, and raised unless exceptions are suppressed
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _packet_queue(self, command, packet, mid, qos, info=None) -> MQTTErrorCode:
        if command != PUBACK or threading.current_thread() is not self._thread:
            return super()._packet_queue(command, packet, mid, qos, info)
        # On the network thread, acknowledging what it has just read: the loop writes after this read
        # burst, so no wake-up is needed, and consecutive acknowledgements travel as one write.
        queued = self._out_packet
        last = queued[-1] if queued else None
        if last is not None and last["command"] == PUBACK and last["pos"] == 0:
            last["packet"] += packet
            last["to_process"] += len(packet)
        else:
            queued.append(
                {
                    "command": PUBACK,
                    "mid": mid,
                    "qos": qos,
                    "pos": 0,
                    "to_process": len(packet),
                    "packet": bytearray(packet),
                    "info": None,
                }
            )
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _varint(data: bytes, at: int, end: int) -> tuple[int | None, int]:
    """MQTT's variable-length integer at ``data[at:]``: (value, index after it), or (None, at) when it does
    not end before ``end`` or is longer than four bytes."""
    value = shift = 0
    for index in range(at, min(end, at + 4)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    return None, at
