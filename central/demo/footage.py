"""Finding the demo's real footage on this machine, or saying exactly how to get it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# PETS 2009 S2.L1, as Debian's opencv-doc package ships it.
VTEST = "pets09-s2l1/vtest.avi"
DEBIAN_OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")


class FootageMissing(RuntimeError):
    pass


def candidates() -> list[Path]:
    """Where footage may be, in order: $KUZET_FOOTAGE, $KUZET_SHARED/data, ../shared/data beside the checkout."""
    places = []
    if os.environ.get("KUZET_FOOTAGE"):
        places.append(Path(os.environ["KUZET_FOOTAGE"]))
    if os.environ.get("KUZET_SHARED"):
        places.append(Path(os.environ["KUZET_SHARED"]) / "data")
    places += [REPO.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    return places


def find_vtest() -> Path:
    for place in candidates():
        if (place / VTEST).is_file():
            return place / VTEST
    debian = DEBIAN_OPENCV_DOC / "vtest.avi"
    if debian.is_file():
        return debian
    searched = "\n  ".join(str(p / VTEST) for p in candidates())
    raise FootageMissing(
        "The demo replays real street footage (PETS 2009 S2.L1, vtest.avi) and cannot find it. Searched:\n  "
        f"{searched}\n  {debian}\n"
        "Get it with one of:\n"
        "  sudo apt-get install opencv-doc        (Debian/Ubuntu: installs it at the last path above)\n"
        "  export KUZET_FOOTAGE=/path/to/folder   (a folder with pets09-s2l1/vtest.avi in it)"
    )
