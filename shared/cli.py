"""The ``kuzet`` command. Each subcommand lives with its subsystem and registers itself as an entry point in
the ``kuzet.commands`` group (pyproject.toml); it is imported only when the parser is built, and one that cannot
be imported (an edge device without Flask, central without OpenCV) is listed as unavailable with the reason.

A subsystem's CLI module provides ``HELP`` (one line), ``EXTRA`` (the pyproject extra that installs what its
``run`` imports), ``add_arguments(parser)`` (argparse only, no heavy imports) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from kuzet.shared import __version__

COMMAND_GROUP = "kuzet.commands"
# The order `kuzet --help` lists them in; a command another distribution registers comes after these.
ORDER = ["central", "camera", "badge", "demo", "models", "provision"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kuzet", description="Kuzet: edge-to-patrol public-safety video.")
    parser.add_argument("--version", action="version", version=f"kuzet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    found = {point.name: point for point in entry_points(group=COMMAND_GROUP)}
    rank = {name: index for index, name in enumerate(ORDER)}
    for name in sorted(found, key=lambda name: (rank.get(name, len(ORDER)), name)):
        try:
            module = found[name].load()
        except ImportError as exc:
            sub = commands.add_parser(name, help="(not available in this installation)")
            sub.set_defaults(_unavailable=f"'kuzet {name}' is not available in this installation: {exc}")
            continue
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run, _extra=getattr(module, "EXTRA", None))
    return parser


def _missing_part(command: str, extra: str | None, exc: ModuleNotFoundError) -> str:
    install = f"pip install 'kuzet[{extra}]'" if extra else "reinstall Kuzet"
    return f"'kuzet {command}' needs {exc.name}, which is not installed here: {install}"


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
    except ModuleNotFoundError as exc:
        # A subcommand imports its heavy dependencies when it runs: one missing from this installation (central
        # on an edge-only device) is said plainly. A missing part of Kuzet itself is a bug, with its traceback.
        if (exc.name or "kuzet").startswith("kuzet"):
            raise
        print(_missing_part(args.command, args._extra, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
