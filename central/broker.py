"""Brokers central can run itself: a Mosquitto child process (tests, demo, a small site) or, on a machine
with no Mosquitto, an embedded pure-Python broker (amqtt) for the demo only.

Production sites run Mosquitto as a system service configured by ``kuzet provision site-init``.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing is listening on {host}:{port} after {timeout_s:.0f} s")


def start_server(
    command: list[str], log_path: Path, port: int, name: str, timeout_s: float
) -> subprocess.Popen:
    """A broker process writing its output to ``log_path``, once it takes connections on ``port``; if it never
    does, it is stopped and the error carries its log's tail."""
    with log_path.open("ab") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout_s)
    except BrokerError:
        stop_server(process)
        raise BrokerError(f"{name} did not start; its log:\n{log_path.read_text()[-2000:]}") from None
    return process


def stop_server(process: subprocess.Popen | None) -> None:
    """Terminate, then kill after 10 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class MosquittoServer:
    """A ``mosquitto`` child process on a port of its own with a configuration we write.

    ``extra_config`` is appended to a plain listener configuration; pass ``config`` to replace it entirely
    (TLS listeners, ACLs). ``port`` stays the same across ``stop()``/``start()`` so clients can reconnect.
    """

    def __init__(
        self,
        port: int | None = None,
        extra_config: str = "",
        config: str | None = None,
        workdir: Path | None = None,
    ):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            raise BrokerError("mosquitto is not installed: apt-get install mosquitto (or pass --broker URL)")
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kuzet-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path.write_text(config if config is not None else self._default_config(extra_config))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _default_config(self, extra: str) -> str:
        return (
            # Started as root, Mosquitto would drop to the 'mosquitto' user, which cannot write its persistence
            # file in our private folder: a restart would then forget sessions and queued messages.
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            f"{extra}\n"
        )

    def start(self, timeout_s: float = 10.0) -> MosquittoServer:
        self.process = start_server(
            [self.binary, "-c", str(self.config_path)], self.log_path, self.port, "mosquitto", timeout_s
        )
        return self

    def stop(self) -> None:
        stop_server(self.process)
        self.process = None

    def __enter__(self) -> MosquittoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmbeddedBroker:
    """amqtt in a thread of this process: MQTT 3.1.1 only, about 3k msg/s. For the demo on a bare machine."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883):
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error is not None:
            raise BrokerError(f"the embedded broker did not start on {self.host}:{self.port}: {self._error}")
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker  # imported here: only the demo on a bare machine needs it

        for chatty in ("amqtt", "transitions"):  # they log every state change of every connection at INFO
            logging.getLogger(chatty).setLevel(logging.WARNING)

        config = {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 500}
            },
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is None or self._broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            future.result(timeout=10)
        except Exception as exc:  # shutting down anyway
            log.debug("embedded broker shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=10)
