"""The ``kuzet`` command finds its subcommands through entry points, and one whose part is not installed (central
on a camera without Flask) is listed as unavailable while the others still run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def kuzet(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kuzet.shared.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture
def edge_only(tmp_path) -> dict:
    """An environment without central's dependencies (Flask, sqlite-utils), as on a camera."""
    for name in ("flask", "sqlite_utils"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ModuleNotFoundError(name={name!r})\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_every_subcommand_is_listed_in_order():
    listed = kuzet("--help").stdout
    positions = [
        listed.index(f"    {name} ") for name in ("central", "camera", "badge", "demo", "models", "provision")
    ]
    assert positions == sorted(positions)


def test_an_edge_only_install_runs_the_camera_and_says_what_central_needs(edge_only, tmp_path):
    assert kuzet("--help", env=edge_only).returncode == 0

    camera = kuzet("camera", "--help", env=edge_only)
    assert camera.returncode == 0 and "--config" in camera.stdout

    central = kuzet("central", "--data-dir", str(tmp_path / "central"), "run", env=edge_only)
    assert central.returncode == 2
    assert "'kuzet central' needs sqlite_utils, which is not installed here" in central.stderr
    assert "pip install 'kuzet[central]'" in central.stderr
    assert "Traceback" not in central.stderr
