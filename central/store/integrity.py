"""Media files are named by their SHA-256, so a file edited on disk says so: its bytes no longer hash to its
name. Central checks that before it serves a file (``checked``) and in a sweep over all of them
(``kuzet central verify-media``), and raises a critical evidence alert for each altered or missing file.

Hashing a clip on every byte-range request of a video player would cost too much; a file that checked out is
remembered by its inode, size, modification and change times (``st_ctime`` cannot be set back by the
user, and any write changes it), so a file altered since is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from flask_babel import gettext

from kuzet.central import alerts
from kuzet.central.store import portable
from kuzet.central.store.objects import ObjectStore, as_object_store, stored_sha256

_verified: dict[str, tuple[int, int, int, int]] = {}  # sha256 -> the stat of the file that checked out
_lock = threading.Lock()
_BLOCK = 1 << 20


class MediaAltered(Exception):
    """The file's bytes do not hash to its name (or it is gone): it must not be served as evidence."""


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def matches(path: Path, sha256: str) -> bool:
    """Whether ``path`` holds bytes hashing to ``sha256`` (streamed; remembered while the file is unchanged)."""
    key = _stat_key(path)
    with _lock:
        if _verified.get(sha256) == key:
            return True
    if file_sha256(path) != sha256:
        with _lock:
            _verified.pop(sha256, None)
        return False
    with _lock:
        _verified[sha256] = key
    return True


MISSING = alerts.say("media_missing")
ALTERED = alerts.say("media_bytes_altered")


def alert_altered(db, row: dict, what: alerts.Text) -> dict:
    """A critical evidence alert about one media file (merged with earlier ones about the same file)."""
    text = alerts.say(
        "media_altered",
        kind=row["kind"],
        sha256=row["sha256"],
        owner=row.get("event_id") or row["device"],
        problem=what,
    )
    return alerts.raise_for_device(
        db,
        "critical",
        text,
        row["device"] or "central",
        f"media altered {row['sha256']}",
        event_id=row.get("event_id"),
    )


def checked(db, media_root: Path, row: dict) -> Path:
    """The file of the media ``row``, once its bytes are known to hash to its name; MediaAltered (and an
    alert) otherwise."""
    path = Path(media_root) / row["path"]
    try:
        ok = matches(path, row["sha256"])
    except FileNotFoundError:
        ok, problem = False, MISSING
    else:
        problem = ALTERED
    if not ok:
        with portable.transaction(db):
            alert_altered(db, row, problem)
        raise MediaAltered(problem.english)
    return path


def sweep(db, media_root: Path | ObjectStore) -> dict:
    """Check every media file (in the media folder or the object store) against its name; raise an alert for
    each that fails. Returns the report."""
    objects = as_object_store(media_root)
    columns = ("sha256", "kind", "path", "size", "event_id", "device")
    problems, checked_count = [], 0
    sql = f"SELECT {', '.join(columns)} FROM media ORDER BY created_at"
    for values in portable.execute(db, sql).fetchall():
        row = dict(zip(columns, values, strict=True))
        checked_count += 1
        found = stored_sha256(objects, row["sha256"])
        if found is None:
            problem = MISSING
        elif found != row["sha256"]:
            problem = ALTERED
        else:
            continue
        with portable.transaction(db):
            alert_altered(db, row, problem)
        problems.append({**row, "problem": problem.english})
    return {"checked": checked_count, "problems": problems}


def verify_media_command(central, args) -> int:
    """``kuzet central verify-media [--json]``: exit 1 when any file does not match its name."""
    from kuzet.central.store.media import MediaStore

    report = sweep(central.db(), MediaStore.for_central(central).objects)
    if getattr(args, "json", False):
        print(json.dumps(report, indent=1))
    else:
        for problem in report["problems"]:
            words = {**problem, "kind": gettext(problem["kind"]), "problem": gettext(problem["problem"])}
            if problem["event_id"]:
                print(gettext("%(kind)s %(sha256)s (event %(event_id)s): %(problem)s", **words))
            else:
                print(gettext("%(kind)s %(sha256)s: %(problem)s", **words))
        print(
            gettext(
                "%(checked)s media files checked, %(bad)s do not match their SHA-256",
                checked=report["checked"],
                bad=len(report["problems"]),
            )
        )
    return 1 if report["problems"] else 0
