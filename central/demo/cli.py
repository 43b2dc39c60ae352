"""``kuzet demo``: a broker, central, two cameras and two badges on this machine, each a real process.

Interactive, it runs until Ctrl-C and prints every process's log lines. ``--duration S --json`` runs
headless for S seconds and prints one JSON object counted from central's database; the exit status is 0 only
when events, clips and acknowledged dispatches are above zero and nothing went wrong.
"""

from __future__ import annotations

import argparse

HELP = "run the whole system on this machine with real footage"
EXTRA = "central,edge"  # what `pip install kuzet[...]` adds for this command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    parser.add_argument("--json", action="store_true", help="headless: print only the summary as JSON")
    parser.add_argument("--broker", help="use this broker (mqtt://host:port) instead of an embedded one")
    parser.add_argument("--port", type=int, default=8080, help="the page's port (default 8080)")
    parser.add_argument(
        "--dir",
        help="where the demo keeps its state (default $KUZET_HOME/demo, wiped each run; locked while a demo"
        " runs in it, through <dir>.lock beside it)",
    )


class StateLocked(RuntimeError):
    """Another demo holds the state folder."""


def lock_path(root):
    """The lock file of a state folder: beside it, not in it, since each run wipes the folder."""
    from pathlib import Path

    root = Path(root)
    return root.with_name(root.name + ".lock")


def lock_state(root) -> int:
    """Take the state folder for this process (an exclusive ``flock`` on ``lock_path(root)``, held until the
    process ends), or raise StateLocked naming the process that holds it. Returns the lock's descriptor."""
    import fcntl
    import os

    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise StateLocked(f"another demo is running in {root} (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    os.set_inheritable(fd, False)
    return fd


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import os
    import shutil
    import signal
    import sys
    import threading
    import time
    from pathlib import Path

    from kuzet.central.broker import BrokerError, free_port, wait_for_port
    from kuzet.central.demo import footage, scenario, summary
    from kuzet.central.demo.supervisor import Supervisor
    from kuzet.central.store import registry
    from kuzet.central.store.schema import open_database
    from kuzet.models import store

    log = logging.getLogger("kuzet.demo")
    if args.json:
        logging.getLogger().setLevel(logging.WARNING)

    root = Path(args.dir) if args.dir else store.kuzet_home() / "demo"
    # Before anything touches the folder: a second demo must not wipe a running one's state (issue 17).
    try:
        lock_state(root)
    except StateLocked as exc:
        print(f"kuzet demo: {exc}; stop it first, or give this one another --dir", file=sys.stderr)
        return 2

    try:
        video = footage.find_vtest()
        store.resolve()  # the default detector, verified
    except (footage.FootageMissing, store.ModelError) as exc:
        print(f"kuzet demo: {exc}", file=sys.stderr)
        return 2
    bodycam = video.parent.parent / "street" / "bikes.mp4"

    if args.broker:
        broker_url, protocol, embedded = args.broker, "5", None
    else:
        port = 1883 if _port_free(1883) else free_port()
        broker_url, protocol, embedded = f"mqtt://127.0.0.1:{port}", "3.1.1", ("127.0.0.1", port)
    if not _port_free(args.port):
        print(f"kuzet demo: port {args.port} is in use; choose another with --port", file=sys.stderr)
        return 2
    shutil.rmtree(root, ignore_errors=True)  # ours alone now (locked), and only once the ports are known free
    world = scenario.write(
        root, broker_url, protocol, args.port, embedded, video, bodycam if bodycam.is_file() else None
    )
    db_path = root / "central" / "kuzet.db"
    database = open_database(db_path)
    scenario.create_accounts(database)
    for registration in world.registrations:  # what `kuzet provision device` does through central's API
        registry.register(database, registration, actor="demo")
    database.close()

    kuzet = [sys.executable, "-m", "kuzet.shared.cli"]
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(footage.REPO), os.environ.get("PYTHONPATH")]))}
    group = Supervisor(echo=not args.json)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        group.start("central", [*kuzet, "central", "--config", str(world.central)], env)
        try:
            wait_for_port("127.0.0.1", args.port, timeout_s=60)
        except BrokerError:
            print(
                "kuzet demo: central did not start; its last lines:\n  "
                + "\n  ".join(group.children[0].log[-20:]),
                file=sys.stderr,
            )
            return 1
        for path in world.cameras:
            group.start(path.stem, [*kuzet, "camera", "--config", str(path)], env)
        for path in world.badges:
            group.start(path.stem, [*kuzet, "badge", "--config", str(path), "--simulate-officer"], env)
        if not args.json:
            log.info(
                "Kuzet demo is up: open http://127.0.0.1:%d and log in as %s, password %s (demo only). "
                "Broker: %s. State: %s. Ctrl-C stops everything.",
                args.port,
                ", ".join(f"{username} ({role})" for username, role, _name in scenario.ACCOUNTS),
                scenario.DEMO_PASSWORD,
                broker_url,
                root,
            )
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.wait(1.0):
            if group.crashed() or (deadline and time.monotonic() >= deadline):
                break
    finally:
        group.stop()
    crashed = [child.name for child in group.crashed()]
    database = open_database(db_path)
    try:
        result = summary.count(database)
    finally:
        database.close()
    result["errors"] = result.pop("dead_letters") + len(crashed)
    for name in crashed:
        print(
            f"kuzet demo: {name} stopped unexpectedly; its last lines:\n  "
            + "\n  ".join(next(c for c in group.children if c.name == name).log[-15:]),
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result))
    else:
        log.info("demo stopped: %s", result)
    if args.duration:
        return 0 if summary.succeeded(result) else 1
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
