"""A device's side of signed updates, whatever the device: which installed versions it runs over its
configuration file, and the ``install_update`` and ``rollback_update`` commands.

Under ``[updates] install_dir`` each kind of update has its own track in the ``edge.updates.installer`` layout
(``<kind>/versions/``, ``current``, ``previous``). Every device takes ``config`` updates: one TOML file
(``config_file``) whose sections replace the configuration file's sections of the same name. The
``fixed_sections`` (identity, broker, state, the update key itself) stay the file's: an update cannot give a
device another identity, broker, state or key. A kind of device adds kinds of its own (the camera's ``model``)
by overriding ``apply``.

What a device runs (``effective``) is its configuration file with the installed updates over it, in the order
of ``kinds``. A new version counts only once it is checked: the configuration it makes validates as the
device's configuration class, the device's ``prepare`` builds what that configuration needs (the camera's
vision pipeline, the badge's GPS route...) and ``try_out`` accepts it. If not, the installer switches back
to the old version and the device keeps running it.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kuzet.edge.updates.config import UpdatesSection
from kuzet.edge.updates.installer import InstallResult, current_version, install_verified, rollback
from kuzet.shared import config as config_files
from kuzet.shared.config import ConfigError, Section

log = logging.getLogger(__name__)

NOT_CONFIGURED = "updates are not configured: set [updates] public_key and install_dir"

# Builds what a configuration needs to run (None: what runs now will do); raises when it cannot.
Prepare = Callable[[Any], Any]


class UpdateError(ValueError):
    """An installed version cannot be used as it is; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """What a checked version runs: its configuration and what ``prepare`` built for it."""

    config: Any
    prepared: Any


class DeviceUpdates:
    device_kind = "device"  # named in refusals: "a camera takes ..."
    kinds: tuple[str, ...] = ("config",)  # also the order they apply in
    config_class: type[Section]
    config_file: str  # what a config update holds, e.g. "camera.toml"
    fixed_sections: tuple[str, ...] = ("device", "mqtt", "storage", "updates")
    held_kinds: tuple[str, ...] = ()  # verified here, then handed to ``hold`` instead of the installer

    def __init__(self, settings: UpdatesSection, config_path: Path | None):
        self.settings = settings
        self.config_path = Path(config_path) if config_path else None

    @property
    def configured(self) -> bool:
        return self.settings.public_key is not None and self.settings.install_dir is not None

    def track(self, kind: str) -> Path:
        return Path(self.settings.install_dir) / kind

    def versions(self) -> dict[str, str]:
        """The versions running now (``config_version``, ...), for command results."""
        if not self.configured:
            return {}
        running = {kind: current_version(self.track(kind)) for kind in self.kinds}
        return {f"{kind}_version": version for kind, version in running.items() if version is not None}

    # --- what runs -------------------------------------------------------------------------------------------

    def effective(self, base):
        """(the file's configuration with the installed updates over it, notes on any left out).

        An installed update that no longer fits (the file was edited since) is left out rather than stopping
        the device."""
        return self.compose(base, strict=False)

    def compose(self, base, strict: bool):
        config, notes = base, []
        for kind in self.kinds:
            folder = self.current(kind)
            if folder is None:
                continue
            try:
                config = self.apply(kind, config, folder)
            except (UpdateError, ConfigError, OSError) as exc:
                if strict:
                    raise
                notes.append(f"the installed {kind} update {folder.name} is left out: {exc}")
                log.error("%s", notes[-1])
        return config, notes

    def current(self, kind: str) -> Path | None:
        """The folder of the installed version of ``kind``, or None."""
        if not self.configured:
            return None
        link = self.track(kind) / "current"
        return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None

    def apply(self, kind: str, config, folder: Path):
        """``config`` with the update in ``folder`` over it; a device with kinds of its own overrides this."""
        if kind != "config":
            raise UpdateError(f"a {self.device_kind} does not take {kind} updates")
        path = folder / self.config_file
        if not path.is_file():
            raise UpdateError(
                f"a {self.device_kind} config update holds {self.config_file}; this one has {names(folder)}"
            )
        try:
            overlay = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UpdateError(f"{self.config_file} is not valid TOML: {exc}") from None
        fixed = sorted(set(overlay) & set(self.fixed_sections))
        if fixed:
            raise UpdateError(
                f"a config update may not change [{'], ['.join(fixed)}]: they stay the {self.device_kind}'s own"
            )
        # Relative paths in the update are relative to the device's configuration file, like the file's own.
        where = self.config_path or "<config>"
        return config_files.parse(config.model_dump() | overlay, self.config_class, where)

    def hold(self, verified) -> InstallResult:
        """A verified bundle of one of ``held_kinds``; a device with such kinds overrides this."""
        raise NotImplementedError

    def try_out(self, kind: str, candidate: Candidate) -> None:
        """A last check of a new version of ``kind`` (raises if it must not run); nothing by default."""

    # --- commands --------------------------------------------------------------------------------------------

    def install(self, args: dict, base, prepare: Prepare) -> tuple[InstallResult, Candidate | None]:
        """``install_update``: fetch, verify, install, check; the candidate to switch to when it installed."""
        if not self.configured:
            return InstallResult(False, NOT_CONFIGURED), None
        # Imported here: the downloader and cryptography cost a device ~9 MB of memory, and most days no
        # update comes.
        from kuzet.edge.updates.fetch import FetchError, fetch_bundle
        from kuzet.shared.bundles import SignatureError, load_public_key, verify_update

        try:
            public_key = load_public_key(self.settings.public_key)
        except (OSError, ValueError) as exc:
            return InstallResult(
                False, f"the site's update key {self.settings.public_key} is unusable: {exc}"
            ), None
        try:
            bundle, downloaded = fetch_bundle(
                url=_text(args, "url"),
                path=_text(args, "path"),
                downloads=Path(self.settings.install_dir) / ".downloads",
                max_bytes=int(self.settings.max_bundle_mb * 2**20),
                timeout_s=self.settings.download_timeout_s,
            )
        except FetchError as exc:
            return InstallResult(False, f"not installed: {exc.reason}"), None
        try:
            verified = verify_update(bundle, public_key)
        except SignatureError as exc:
            log.warning("update refused: %s", exc.reason)
            return InstallResult(False, f"refused: {exc.reason}", refused=True), None
        finally:
            if downloaded:
                bundle.unlink(missing_ok=True)
        kind = verified.manifest.kind
        if (
            kind in self.held_kinds
        ):  # kept by the device itself, never unpacked to disk (the camera's watchlist)
            return self.hold(verified), None
        if kind not in self.kinds:
            message = (
                f"refused: a {kind!r} bundle; a {self.device_kind} takes {' or '.join(self.kinds)} updates"
            )
            return InstallResult(False, message, kind=kind, refused=True), None
        built: list[Candidate] = []

        def check(_current: Path) -> None:
            config, _ = self.compose(base, strict=True)
            candidate = Candidate(config, prepare(config))
            self.try_out(kind, candidate)
            built.append(candidate)

        outcome = install_verified(verified, self.track(kind), expected_kind=kind, check=check)
        return outcome, (built[0] if outcome.ok and built else None)

    def rollback(self, args: dict, base, prepare: Prepare) -> tuple[InstallResult, Candidate | None]:
        """``rollback_update``: back to the previous version of ``args.kind``."""
        kind = args.get("kind")
        if kind not in self.kinds:
            return InstallResult(False, f"rollback_update needs args.kind: {' or '.join(self.kinds)}"), None
        if not self.configured:
            return InstallResult(False, NOT_CONFIGURED), None
        outcome = rollback(self.track(kind))
        if not outcome.ok:
            return replace(outcome, kind=kind), None
        try:
            config, _ = self.compose(base, strict=True)
            return replace(outcome, kind=kind), Candidate(config, prepare(config))
        except Exception as exc:  # the previous version no longer fits: stay on the one that runs
            rollback(self.track(kind))  # current and previous trade places back
            message = f"{kind} {outcome.version} cannot run ({exc}); still running {outcome.previous_version}"
            return InstallResult(False, message, kind=kind, version=outcome.previous_version), None


def _text(args: dict, key: str) -> str | None:
    value = args.get(key)
    return value if isinstance(value, str) and value else None


def names(folder: Path) -> str:
    """What a folder holds, for messages about a malformed update."""
    return ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
