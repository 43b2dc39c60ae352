"""Runs the demo's processes side by side, like a Procfile runner: each line of their output is prefixed with
the process name, a process that dies is reported, and stopping sends SIGTERM, then SIGKILL to stragglers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

COLOURS = ["36", "33", "35", "32", "34", "31"]


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    colour: str
    expected_exit: bool = False
    log: list[str] = field(default_factory=list)


class Supervisor:
    def __init__(self, echo: bool = True, log_tail: int = 200):
        self.children: list[Child] = []
        self.echo = echo
        self.log_tail = log_tail
        self._lock = threading.Lock()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            text=True,
            bufsize=1,
        )
        child = Child(name, process, COLOURS[len(self.children) % len(COLOURS)])
        self.children.append(child)
        threading.Thread(target=self._pump, args=(child,), name=f"out-{name}", daemon=True).start()
        return child

    def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        tty = sys.stdout.isatty()
        for line in child.process.stdout:
            line = line.rstrip("\n")
            child.log.append(line)
            del child.log[: -self.log_tail]
            if self.echo:
                prefix = f"\033[{child.colour}m{child.name:>10}\033[0m |" if tty else f"{child.name:>10} |"
                with self._lock:
                    print(f"{prefix} {line}", file=sys.stderr if not tty else sys.stdout, flush=True)

    def crashed(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() not in (None, 0) and not c.expected_exit]

    def stop(self, timeout_s: float = 15.0) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.expected_exit = True
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
