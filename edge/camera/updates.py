"""The camera's side of signed updates: which installed versions it runs, and how a new version is checked.

Under ``[updates] install_dir`` each kind has its own track in the ``edge.updates`` layout (``versions/``,
``current``, ``previous``):

- ``model/``: a detector model, one ``.tflite`` file and ``labels.txt`` (one label a line, class 0 first); the
  camera runs it in place of ``[detector] model``.
- ``config/``: ``camera.toml``, whose sections replace the configuration file's sections of the same name
  (zones, lines, rules, detector settings...). ``[device]``, ``[mqtt]``, ``[storage]``, ``[outbox]`` and
  ``[updates]`` stay the file's: an update cannot give a camera another identity, broker, state or key.

What the camera runs (``effective``) is its configuration file, the installed config update over it, and the
installed model over that. A new version counts only once it is checked: the configuration it makes must
validate as a ``CameraConfig``, and its vision pipeline must build, which loads the model into the detector
(a new model also runs once on a blank frame). If not, the installer switches back to the old version.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.camera.config import CameraConfig, UpdatesSection
from edge.updates import FetchError, InstallResult, current_version, fetch_bundle, install_verified, rollback
from provisioning.signing import SignatureError, load_public_key, verify_update
from shared import config as config_files
from shared.config import ConfigError

log = logging.getLogger(__name__)

KINDS = ("model", "config")
CONFIG_FILE = "camera.toml"
LABELS_FILE = "labels.txt"
FIXED_SECTIONS = ("device", "mqtt", "storage", "outbox", "updates")

# Builds the vision pipeline a configuration needs (None: the running one will do); raises when it cannot.
Prepare = Callable[[CameraConfig], Any]


class UpdateError(ValueError):
    """An installed version cannot be used as it is; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """What a checked version runs: its configuration and the pipeline already built for it."""

    config: CameraConfig
    pipeline: Any


class CameraUpdates:
    def __init__(self, settings: UpdatesSection, config_path: Path | None):
        self.settings = settings
        self.config_path = Path(config_path) if config_path else None

    @property
    def configured(self) -> bool:
        return self.settings.public_key is not None and self.settings.install_dir is not None

    def track(self, kind: str) -> Path:
        return Path(self.settings.install_dir) / kind

    def versions(self) -> dict[str, str]:
        """The versions running now (``model_version``, ``config_version``), for command results."""
        if not self.configured:
            return {}
        running = {kind: current_version(self.track(kind)) for kind in KINDS}
        return {f"{kind}_version": version for kind, version in running.items() if version is not None}

    # --- what runs -------------------------------------------------------------------------------------------

    def effective(self, base: CameraConfig) -> tuple[CameraConfig, list[str]]:
        """The file's configuration with the installed updates over it, and notes on any left out.

        An installed update that no longer fits (the file was edited since) is left out rather than stopping
        the camera."""
        return self._compose(base, strict=False)

    def _compose(self, base: CameraConfig, strict: bool) -> tuple[CameraConfig, list[str]]:
        config, notes = base, []
        for kind, apply in (("config", self._with_config), ("model", self._with_model)):
            folder = self._current(kind)
            if folder is None:
                continue
            try:
                config = apply(config, folder)
            except (UpdateError, ConfigError, OSError) as exc:
                if strict:
                    raise
                notes.append(f"the installed {kind} update {folder.name} is left out: {exc}")
                log.error("%s", notes[-1])
        return config, notes

    def _current(self, kind: str) -> Path | None:
        if not self.configured:
            return None
        link = self.track(kind) / "current"
        return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None

    def _with_config(self, config: CameraConfig, folder: Path) -> CameraConfig:
        path = folder / CONFIG_FILE
        if not path.is_file():
            raise UpdateError(f"a camera config update holds {CONFIG_FILE}; this one has {_names(folder)}")
        try:
            overlay = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UpdateError(f"{CONFIG_FILE} is not valid TOML: {exc}") from None
        fixed = sorted(set(overlay) & set(FIXED_SECTIONS))
        if fixed:
            raise UpdateError(
                f"a config update may not change [{'], ['.join(fixed)}]: they stay the camera's own"
            )
        # Relative paths in the update are relative to the camera's configuration file, like the file's own.
        return config_files.parse(config.model_dump() | overlay, CameraConfig, self.config_path or "<config>")

    def _with_model(self, config: CameraConfig, folder: Path) -> CameraConfig:
        models = sorted(folder.glob("*.tflite"))
        if len(models) != 1:
            raise UpdateError(f"a model update holds one .tflite file; this one has {_names(folder)}")
        labels_path = folder / LABELS_FILE
        if not labels_path.is_file():
            raise UpdateError(
                f"a model update holds {LABELS_FILE} (one label a line); this one has {_names(folder)}"
            )
        labels = {line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()}
        if not labels & set(config.detector.labels):
            raise UpdateError(
                f"the model finds none of the labels [detector] keeps ({', '.join(config.detector.labels)})"
            )
        detector = config.detector.model_copy(update={"model": str(models[0]), "labels_path": labels_path})
        return config.model_copy(update={"detector": detector})

    # --- commands --------------------------------------------------------------------------------------------

    def install(
        self, args: dict, base: CameraConfig, prepare: Prepare
    ) -> tuple[InstallResult, Candidate | None]:
        """``install_update``: fetch, verify, install, check; the candidate to switch to when it installed."""
        if not self.configured:
            return InstallResult(
                False, "updates are not configured: set [updates] public_key and install_dir"
            ), None
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
        if kind not in KINDS:
            message = f"refused: a {kind!r} bundle; a camera takes {' or '.join(KINDS)} updates"
            return InstallResult(False, message, kind=kind, refused=True), None
        built: list[Candidate] = []

        def check(_current: Path) -> None:
            config, _ = self._compose(base, strict=True)
            pipeline = prepare(config)
            if kind == "model" and pipeline is not None:
                pipeline.detector.detect(
                    np.zeros((480, 640, 3), np.uint8)
                )  # a model that loads must also run
            built.append(Candidate(config, pipeline))

        outcome = install_verified(verified, self.track(kind), expected_kind=kind, check=check)
        return outcome, (built[0] if outcome.ok and built else None)

    def rollback(
        self, args: dict, base: CameraConfig, prepare: Prepare
    ) -> tuple[InstallResult, Candidate | None]:
        """``rollback_update``: back to the previous version of ``args.kind``."""
        kind = args.get("kind")
        if kind not in KINDS:
            return InstallResult(False, f"rollback_update needs args.kind: {' or '.join(KINDS)}"), None
        if not self.configured:
            return InstallResult(
                False, "updates are not configured: set [updates] public_key and install_dir"
            ), None
        outcome = rollback(self.track(kind))
        if not outcome.ok:
            return replace(outcome, kind=kind), None
        try:
            config, _ = self._compose(base, strict=True)
            return replace(outcome, kind=kind), Candidate(config, prepare(config))
        except Exception as exc:  # the previous version no longer fits: stay on the one that runs
            rollback(self.track(kind))  # current and previous trade places back
            message = f"{kind} {outcome.version} cannot run ({exc}); still running {outcome.previous_version}"
            return InstallResult(False, message, kind=kind, version=outcome.previous_version), None


def _text(args: dict, key: str) -> str | None:
    value = args.get(key)
    return value if isinstance(value, str) and value else None


def _names(folder: Path) -> str:
    return ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
