"""The printed label's QR code must scan: a technician at the pole reads the device's id off it. OpenCV's two
detectors stand in for phones' scanners: the newer (ArUco-based) one, like a good scanner, reads every label;
the classic one, like a cheap scanner, misses about one code in a hundred, whatever the label."""

from __future__ import annotations

import json

import cv2

from kuzet.provisioning import qr
from kuzet.provisioning.device import new_device_id


def _scanned(detector, path) -> str | None:
    decoded, _, _ = detector.detectAndDecode(cv2.imread(str(path)))
    return json.loads(decoded)["id"] if decoded else None


def test_every_label_scans_back_to_the_device(tmp_path):
    labels = {}
    for n in range(80):  # every id makes a different code, and some codes scan worse than others
        device_id = new_device_id("camera" if n % 2 else "badge", set())
        labels[device_id] = qr.png(device_id, "Лермонтова / Торайгырова", "pavlodar", tmp_path / f"{n}.png")
    good = [
        device_id
        for device_id, path in labels.items()
        if _scanned(cv2.QRCodeDetectorAruco(), path) == device_id
    ]
    assert len(good) == len(labels)
    cheap = [
        device_id for device_id, path in labels.items() if _scanned(cv2.QRCodeDetector(), path) == device_id
    ]
    assert len(cheap) >= 76, f"the classic detector read {len(cheap)} of {len(labels)} labels"
