"""Install a signed model or configuration bundle, keeping the previous version to roll back to.

Layout under ``install_dir``::

    versions/<version>/...   each installed version, unpacked
    current  -> versions/<v> what the agent loads (a symlink, switched atomically with rename)
    previous -> versions/<u> what ``rollback`` returns to

Nothing is unpacked before the signature and every checksum are good; a refused bundle leaves ``current``
untouched, and so does a bundle older than the installed version (a downgrade: ``rollback`` is the way back).
After the switch an optional ``check`` (e.g. "load the model", "parse the config") runs on the new version; if
it fails, ``current`` goes back to the old version and the result says so.

Versions compare part by part (split at ``.``, ``-``, ``_``), numbers as numbers: 2 < 10, 1.0 < 1.0.1,
2026.11.21-1 < 2026.11.21-2.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kuzet.shared import messages

if TYPE_CHECKING:
    from kuzet.shared.bundles import VerifiedBundle

log = logging.getLogger(__name__)
KEEP_VERSIONS = 3  # current, previous and one more; older ones are removed to spare the SD card


@dataclass(frozen=True)
class InstallResult:
    ok: bool
    message: str
    kind: str | None = None
    version: str | None = None  # what is running now
    previous_version: str | None = None
    refused: bool = False  # signature or checksum failure: nothing was installed
    rolled_back: bool = False
    details: dict = field(default_factory=dict)

    def command_data(self) -> dict[str, str | bool]:
        """Flat fields for ``CommandResult.data`` of the ``install_update`` command."""
        data: dict[str, str | bool] = {"refused": self.refused, "rolled_back": self.rolled_back}
        for key in ("kind", "version", "previous_version"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def command_result(self, device: str, command_id: str) -> messages.CommandResult:
        """The answer to central's ``install_update`` command."""
        return messages.CommandResult(
            device=device,
            command_id=command_id,
            name="install_update",
            ok=self.ok,
            message=self.message[:2000],
            data=self.command_data(),
        )


def current_version(install_dir: Path) -> str | None:
    link = Path(install_dir) / "current"
    return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None


def version_key(version: str) -> tuple:
    """Sort key of a version name: numeric parts as numbers (ahead of words), a longer version after its prefix."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[._-]", version)
    )


def install(
    bundle_path: Path,
    site_public_key,
    install_dir: Path,
    *,
    expected_kind: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> InstallResult:
    # Imported here: cryptography costs a device ~8 MB of memory, and most days no update comes.
    from kuzet.shared.bundles import SignatureError, load_public_key, verify_update

    install_dir = Path(install_dir)
    try:
        verified = verify_update(Path(bundle_path), load_public_key(site_public_key))
    except SignatureError as exc:
        log.warning("update %s refused: %s", bundle_path, exc.reason)
        return InstallResult(
            False, f"refused: {exc.reason}", version=current_version(install_dir), refused=True
        )
    return install_verified(verified, install_dir, expected_kind=expected_kind, check=check)


def install_verified(
    verified: VerifiedBundle,
    install_dir: Path,
    *,
    expected_kind: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> InstallResult:
    """Install a bundle whose signature and checksums ``verify_update`` has checked."""
    install_dir = Path(install_dir)
    running = current_version(install_dir)
    manifest = verified.manifest
    if expected_kind is not None and manifest.kind != expected_kind:
        return InstallResult(
            False,
            f"refused: a {manifest.kind} bundle where a {expected_kind} was expected",
            kind=manifest.kind,
            version=running,
            refused=True,
        )
    from kuzet.shared.bundles import safe_member

    for name in sorted(verified.files):  # verify_update checked them too; nothing is written before this
        if not safe_member(name) or not _inside(install_dir / "versions" / ".staging", name):
            return InstallResult(
                False,
                f"refused: files/{name} would be written outside the update",
                version=running,
                refused=True,
            )
    if not _safe_version(manifest.version):
        return InstallResult(
            False, f"refused: bad version name {manifest.version!r}", version=running, refused=True
        )
    if manifest.version == running:
        if _same_files(install_dir / "current", verified):
            return InstallResult(
                True,
                f"{manifest.kind} {running} is already installed; nothing changed",
                manifest.kind,
                running,
            )
        return InstallResult(
            False,
            f"refused: {manifest.kind} {running} is installed with other contents; "
            "sign the new contents with a newer version",
            manifest.kind,
            running,
            refused=True,
        )
    if running is not None and version_key(manifest.version) < version_key(running):
        return InstallResult(
            False,
            f"refused: {manifest.kind} {manifest.version} is older than the installed {running} (a downgrade); "
            "to go back to the previous version use rollback_update",
            manifest.kind,
            running,
            refused=True,
        )

    versions = install_dir / "versions"
    target = versions / manifest.version
    staging = versions / f".staging-{manifest.version}"
    try:
        _unpack(verified.files, staging)
    except OSError as exc:  # a full or failing SD card: nothing was switched yet
        shutil.rmtree(staging, ignore_errors=True)
        return InstallResult(
            False, f"could not unpack {manifest.kind} {manifest.version}: {exc}", manifest.kind, running
        )
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    _point(install_dir / "current", target)
    if check is not None:
        try:
            check(install_dir / "current")
        except Exception as exc:  # whatever the check raises, the device must go back to what worked
            log.error("update %s %s failed its check: %s; rolling back", manifest.kind, manifest.version, exc)
            if running is not None:
                _point(install_dir / "current", versions / running)
            else:
                (install_dir / "current").unlink()
            shutil.rmtree(target, ignore_errors=True)
            return InstallResult(
                False,
                f"{manifest.kind} {manifest.version} failed its check ({exc}); still running "
                f"{running or 'what it ran before'}",
                manifest.kind,
                running,
                rolled_back=True,
            )
    if running is not None:  # only now: a version that failed its check leaves ``previous`` as it was
        _point(install_dir / "previous", versions / running)
    _prune(install_dir)
    log.info("installed %s %s (previous %s)", manifest.kind, manifest.version, running)
    return InstallResult(
        True,
        f"installed {manifest.kind} {manifest.version}",
        manifest.kind,
        manifest.version,
        previous_version=running,
    )


def _same_files(folder: Path, verified: VerifiedBundle) -> bool:
    """Whether an installed version holds exactly the bundle's files (a resent command, not new contents)."""
    on_disk = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    return set(on_disk) == set(verified.files) and all(
        hashlib.sha256(on_disk[name].read_bytes()).hexdigest() == entry["sha256"]
        for name, entry in verified.manifest.files.items()
    )


def _inside(folder: Path, name: str) -> bool:
    """Whether ``folder / name`` stays inside ``folder`` once resolved (links already on disk included)."""
    root = Path(os.path.realpath(folder))
    return Path(os.path.realpath(folder / name)).is_relative_to(root)


def _unpack(files: dict[str, bytes], staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    for name, data in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def rollback(install_dir: Path) -> InstallResult:
    """Go back to the previous version (e.g. an operator saw the new model misbehave)."""
    install_dir = Path(install_dir)
    previous = install_dir / "previous"
    if not previous.is_symlink() or not previous.resolve().is_dir():
        return InstallResult(
            False, "no previous version to roll back to", version=current_version(install_dir)
        )
    running = current_version(install_dir)
    target = previous.resolve()
    _point(install_dir / "current", target)
    if running is not None:
        _point(previous, install_dir / "versions" / running)
    return InstallResult(
        True, f"rolled back to {target.name}", version=target.name, previous_version=running, rolled_back=True
    )


def _point(link: Path, target: Path) -> None:
    """Make ``link`` point at ``target`` atomically (a reader sees the old or the new, never nothing)."""
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def _safe_version(version: str) -> bool:
    return (
        bool(version)
        and len(version) <= 64
        and all(c.isalnum() or c in "._-" for c in version)
        and version[0] != "."
    )


def _prune(install_dir: Path) -> None:
    keep = {current_version(install_dir)}
    previous = install_dir / "previous"
    if previous.is_symlink():
        keep.add(os.readlink(previous).rsplit("/", 1)[-1])
    versions = sorted(
        (p for p in (install_dir / "versions").iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in [p for p in versions[KEEP_VERSIONS:] if p.name not in keep]:
        shutil.rmtree(path, ignore_errors=True)
