"""A throw-away NATS server with its MQTT listener (and JetStream, which that listener needs for sessions, QoS 1
and retained messages), on free ports in a folder of its own: the second broker implementation Kuzet is
tested against. Never the machine's own NATS (4222). Debian's package is ``nats-server`` (/usr/sbin)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kuzet.central.broker import free_port, start_server, stop_server

BINARY = shutil.which("nats-server") or "/usr/sbin/nats-server"
# Kuzet's largest message (a snapshot or a dispatch carrying one, messages.MAX_PAYLOAD_BYTES) is over NATS's
# default max_payload of 1 MB.
MAX_PAYLOAD = "4MB"


def installed() -> bool:
    return Path(BINARY).exists()


class NatsServer:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.mqtt_port = free_port(), free_port()
        self.config_path = self.workdir / "nats.conf"
        self.log_path = self.workdir / "nats.log"
        self.config_path.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f'server_name: "kuzet-test-{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{self.workdir / "jetstream"}", max_memory_store: 64MB, '
            "max_file_store: 1GB }\n"
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}\n"
        )
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def start(self, timeout_s: float = 15.0) -> NatsServer:
        self.process = start_server(
            [BINARY, "-c", str(self.config_path)], self.log_path, self.mqtt_port, "nats-server", timeout_s
        )
        return self

    def stop(self) -> None:
        stop_server(self.process)
