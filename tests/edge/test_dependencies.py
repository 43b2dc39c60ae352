"""The update bundle's format and verification are shared/bundles.py, which needs cryptography only to check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kuzet.shared import bundles

EDGE = Path(__file__).resolve().parents[2] / "edge"


def test_without_cryptography_a_bundle_check_says_what_is_missing(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "cryptography" or m.startswith("cryptography.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import cryptography... raises ImportError
    with pytest.raises(bundles.SignatureError, match="need the 'cryptography' package"):
        bundles.load_public_key(tmp_path / "update.pub")
    assert bundles.safe_member("files/model.tflite") and not bundles.safe_member("../etc/passwd")
