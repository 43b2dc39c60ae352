"""``kuzet badge``: run the smart-badge agent, with its terminal interface or headless."""

from __future__ import annotations

import argparse

HELP = "run a smart-badge agent"
EXTRA = "edge"  # what `pip install kuzet[...]` adds for this command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="the badge's TOML configuration")
    parser.add_argument("--no-tui", action="store_true", help="run headless (no terminal interface)")
    parser.add_argument(
        "--simulate-officer",
        action="store_true",
        help="headless, with a simulated officer working every dispatch (demo and soak tests)",
    )


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from kuzet.edge.badge.agent import BadgeAgent
    from kuzet.edge.badge.config import BadgeConfig
    from kuzet.shared.config import ConfigError, load
    from kuzet.shared.memory import tune_malloc

    tune_malloc()
    try:
        config = load(args.config, BadgeConfig)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    headless = args.no_tui or args.simulate_officer
    if not headless:
        # Log lines would scribble over the screen: send them to a file beside the badge's data.
        import logging

        config.storage.dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(config.storage.dir / "badge.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root = logging.getLogger()
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
    try:
        agent = BadgeAgent(config, config_path=args.config).start(wait_s=5)
    except (OSError, ValueError) as exc:
        print(f"badge: cannot start: {exc}", file=sys.stderr)
        return 1
    officer = None
    if args.simulate_officer:
        from kuzet.edge.badge.simulated_officer import SimulatedOfficer

        officer = SimulatedOfficer(agent).start()
    try:
        if headless:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            stop.wait()
            return 0
        from kuzet.edge.badge import tui

        return tui.run(agent)
    finally:
        if officer is not None:
            officer.stop()
        agent.stop()
