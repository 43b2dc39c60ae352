"""The camera's side of signed updates (the generic part is ``edge.updates.device``): two kinds of update,
applied in this order over the camera's configuration file:

- ``config``: ``camera.toml``, whose sections replace the configuration file's sections of the same name
  (zones, lines, rules, detector settings...). ``[device]``, ``[mqtt]``, ``[storage]``, ``[outbox]`` and
  ``[updates]`` stay the file's.
- ``model``: a detector model, one ``.tflite`` file and ``labels.txt`` (one label a line, class 0 first); the
  camera runs it in place of ``[detector] model``.

A new version is checked by building its vision pipeline, which loads the model into the detector; a new model
also runs once on a blank frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kuzet.edge.camera.config import CameraConfig
from kuzet.edge.updates.device import Candidate, DeviceUpdates, UpdateError, names
from kuzet.edge.updates.installer import InstallResult

LABELS_FILE = "labels.txt"


class CameraUpdates(DeviceUpdates):
    device_kind = "camera"
    kinds = ("config", "model")
    config_class = CameraConfig
    config_file = "camera.toml"
    fixed_sections = ("device", "mqtt", "storage", "outbox", "updates")
    held_kinds = ("watchlist",)
    # The face watchlist's keeper (the agent sets it when [faces] is on): verified bundle -> InstallResult.
    watchlist_keeper = None

    def hold(self, verified) -> InstallResult:
        if self.watchlist_keeper is None:
            return InstallResult(
                False,
                "refused: face matching is off on this camera ([faces] enabled)",
                kind="watchlist",
                refused=True,
            )
        return self.watchlist_keeper(verified)

    def apply(self, kind: str, config: CameraConfig, folder: Path) -> CameraConfig:
        if kind == "model":
            return self._with_model(config, folder)
        return super().apply(kind, config, folder)

    def try_out(self, kind: str, candidate: Candidate) -> None:
        if kind == "model" and candidate.prepared is not None:
            # a model that loads must also run
            candidate.prepared.detector.detect(np.zeros((480, 640, 3), np.uint8))

    def _with_model(self, config: CameraConfig, folder: Path) -> CameraConfig:
        models = sorted(folder.glob("*.tflite"))
        if len(models) != 1:
            raise UpdateError(f"a model update holds one .tflite file; this one has {names(folder)}")
        labels_path = folder / LABELS_FILE
        if not labels_path.is_file():
            raise UpdateError(
                f"a model update holds {LABELS_FILE} (one label a line); this one has {names(folder)}"
            )
        labels = {line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()}
        if not labels & set(config.detector.labels):
            raise UpdateError(
                f"the model finds none of the labels [detector] keeps ({', '.join(config.detector.labels)})"
            )
        detector = config.detector.model_copy(update={"model": str(models[0]), "labels_path": labels_path})
        return config.model_copy(update={"detector": detector})
