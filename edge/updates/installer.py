"""Install a signed model or configuration bundle, keeping the previous version to roll back to.

Layout under ``install_dir``::

    versions/<version>/...   each installed version, unpacked
    current  -> versions/<v> what the agent loads (a symlink, switched atomically with rename)
    previous -> versions/<u> what ``rollback`` returns to

Nothing is unpacked before the signature and every checksum are good; a refused bundle leaves ``current``
untouched. After the switch an optional ``check`` (e.g. "load the model", "parse the config") runs on the
new version; if it fails, ``current`` goes back to the old version and the result says so.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from provisioning.signing import SignatureError, load_public_key, verify_update
from shared import messages

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


def install(
    bundle_path: Path,
    site_public_key,
    install_dir: Path,
    *,
    expected_kind: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> InstallResult:
    install_dir = Path(install_dir)
    running = current_version(install_dir)
    try:
        verified = verify_update(Path(bundle_path), load_public_key(site_public_key))
    except SignatureError as exc:
        log.warning("update %s refused: %s", bundle_path, exc.reason)
        return InstallResult(False, f"refused: {exc.reason}", version=running, refused=True)
    manifest = verified.manifest
    if expected_kind is not None and manifest.kind != expected_kind:
        return InstallResult(
            False,
            f"refused: a {manifest.kind} bundle where a {expected_kind} was expected",
            kind=manifest.kind,
            version=running,
            refused=True,
        )
    if not _safe_version(manifest.version):
        return InstallResult(
            False, f"refused: bad version name {manifest.version!r}", version=running, refused=True
        )
    if manifest.version == running:
        return InstallResult(True, f"{manifest.kind} {running} is already installed", manifest.kind, running)

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
    if running is not None:
        _point(install_dir / "previous", versions / running)

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
                f"{manifest.kind} {manifest.version} failed its check ({exc}); still running {running}",
                manifest.kind,
                running,
                rolled_back=True,
            )
    _prune(install_dir)
    log.info("installed %s %s (previous %s)", manifest.kind, manifest.version, running)
    return InstallResult(
        True,
        f"installed {manifest.kind} {manifest.version}",
        manifest.kind,
        manifest.version,
        previous_version=running,
    )


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
