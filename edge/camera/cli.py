"""``kuzet camera --config FILE``: run a street camera agent until SIGTERM/SIGINT (or a played file ends)."""

from __future__ import annotations

import argparse
import sys

HELP = "run a street camera agent"
EXTRA = "edge"  # what `pip install kuzet[...]` adds for this command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, help="the camera's TOML configuration")
    parser.add_argument(
        "--check", action="store_true", help="only check the configuration and print a summary, then exit"
    )


def run(args: argparse.Namespace) -> int:
    import signal

    from kuzet.edge.camera.config import load
    from kuzet.shared.config import ConfigError
    from kuzet.shared.memory import tune_malloc

    tune_malloc()

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        print(
            f"{args.config}: camera {config.device.id} at {config.device.site}, source {config.source.kind} "
            f"{config.source.location or '(none)'}, {len(config.zones)} zone(s), {len(config.lines)} line(s), "
            f"{len(config.rules)} rule(s); state in {config.storage.dir}"
        )
        return 0

    from kuzet.edge.camera.agent import CameraAgent

    try:
        agent = CameraAgent(config, args.config)
    except Exception as exc:  # a missing model, an unwritable state directory: say so plainly
        print(f"the camera cannot start: {exc}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    return agent.run()
