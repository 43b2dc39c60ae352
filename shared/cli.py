"""The ``kuzet`` command. Each subcommand lives with its subsystem and is imported only when used, so an
edge device without Flask, or central without OpenCV, still runs its own part.

A subsystem's CLI module provides ``add_arguments(parser)`` (argparse only, no heavy imports) and
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from shared import __version__

SUBCOMMANDS = [
    ("central", "central.cli", "run the central aggregator (web page, ingest, routing); manage its users"),
    ("camera", "edge.camera.cli", "run a street camera agent"),
    ("badge", "edge.badge.cli", "run a smart-badge agent"),
    ("demo", "central.demo.cli", "run the whole system on this machine with real footage"),
    ("models", "models.cli", "list, fetch, import, verify and build detector models"),
    ("provision", "provisioning.cli", "site CA, device identities, SD cards, updates and revocation"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kuzet", description="Kuzet: edge-to-patrol public-safety video.")
    parser.add_argument("--version", action="version", version=f"kuzet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in SUBCOMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            sub.set_defaults(_unavailable=f"'kuzet {name}' is not available in this installation: {exc}")
            continue
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(args._unavailable, file=sys.stderr)
        return 2
    try:
        return args._run(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
