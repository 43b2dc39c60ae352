"""Issue 17, the demo lock: ``kuzet demo`` wiped its state folder before checking that its port was free, so a
second demo (even one that then stopped on "port in use") wiped a running one. The attack as found: a demo
running in a folder, a second ``kuzet demo --dir`` on the same folder and a port in use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kuzet.central.demo import footage

KUZET = str(Path(sys.executable).with_name("kuzet"))

# A running demo as far as the lock goes: it holds <dir>.lock (flock) with its pid in it, until it ends.
HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
    print("holding", flush=True)
    time.sleep(120)
    """
)


def test_a_second_demo_refuses_and_leaves_the_running_ones_state_alone(tmp_path):
    try:
        footage.find_vtest()  # without footage the demo stops before it would wipe anything
    except footage.FootageMissing as exc:
        pytest.skip(f"the demo's footage is missing: {exc}")
    root = tmp_path / "demo"
    (root / "central").mkdir(parents=True)
    state = root / "central" / "kuzet.db"
    state.write_bytes(b"the running demo's database")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root.with_name("demo.lock"))], stdout=subprocess.PIPE, text=True
    )
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        assert holder.stdout.readline().strip() == "holding"
        done = subprocess.run(
            [KUZET, "demo", "--dir", str(root), "--port", str(busy.getsockname()[1]), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert state.read_bytes() == b"the running demo's database"
        assert done.returncode == 2
        assert f"another demo is running in {root} (pid {holder.pid})" in done.stderr, done.stderr
    finally:
        busy.close()
        holder.kill()
        holder.wait()


def test_the_lock_is_released_when_the_demo_ends(tmp_path):
    from kuzet.central.demo.cli import StateLocked, lock_path, lock_state

    root = tmp_path / "demo"
    code = "import sys; from kuzet.central.demo.cli import lock_state; lock_state(sys.argv[1]); print('ok')"
    first = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60
    )
    assert first.stdout.strip() == "ok", first.stderr
    fd = lock_state(root)  # the first process ended: its lock went with it
    try:
        assert lock_path(root).read_text().strip() == str(os.getpid())
        again = subprocess.run(
            [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60
        )
        assert again.returncode != 0 and "another demo is running in" in again.stderr
        assert StateLocked.__name__ in again.stderr
    finally:
        os.close(fd)
