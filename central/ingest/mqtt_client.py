"""Paho's client, tuned for central's one subscription that receives everything every device sends.

Paho reads each packet with three ``recv`` calls (command byte, length, body), wakes its own ``select`` with a
socket write for every PUBACK it queues, and sends each PUBACK with a ``send`` of its own: five or six system
calls per message. Each releases the interpreter lock, and with the ingest writer busy on the other side of
that lock the network thread then waits up to a switch interval (5 ms) to get it back: at thousands of
messages a second it falls behind while the CPU is idle. This client

- reads the socket 256 KiB at a time and serves paho's small reads from memory,
- reads every packet that has arrived before going back to ``select`` (paho stops after one), and
- queues the PUBACKs of a burst as one write, sent once the burst has been read, and
- hands each message straight to ``on_message`` (``Link``'s one callback), skipping paho's search of the
  per-topic callbacks (``message_callback_add``, which this client therefore refuses).

Nothing else changes: the packets, the order of acknowledgements (still after ``on_message`` has taken the
message), reconnects and TLS are paho's own. The overrides rest on paho 2.2 internals (pinned in
pyproject.toml); tests/test_ingest.py runs ingest through this client against a real Mosquitto.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.client import PUBACK, MQTTErrorCode

READ_BYTES = 256 * 1024  # one recv: some hundreds of event messages
READ_BURST = 5000  # packets read before writes and keep-alives get their turn


class _BufferedSocket:
    """The socket (plain or TLS) with a read buffer. ``pending()`` tells paho's loop that buffered bytes are
    waiting, as an SSL socket's does, so that it reads them without waiting in ``select``."""

    def __init__(self, sock):
        self._sock = sock
        self._data = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        if self._at >= len(self._data):
            data = self._sock.recv(READ_BYTES)  # BlockingIOError / SSLWantReadError pass through to paho
            if not data:
                return data
            self._data, self._at = data, 0
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._at + inner

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class BulkReceiveClient(paho.Client):
    def _create_socket(self):
        return _BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        for _ in range(READ_BURST):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def message_callback_add(self, sub, callback) -> None:
        raise NotImplementedError("BulkReceiveClient delivers every message to on_message")

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
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
