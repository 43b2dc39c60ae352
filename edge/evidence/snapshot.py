"""Snapshot JPEGs: the event's frame with its boxes drawn and labelled, bounded in size."""

from __future__ import annotations

from datetime import datetime

import cv2
import numpy as np

# Stays well under the snapshot message's 1 MiB limit once base64-encoded.
MAX_SNAPSHOT_BYTES = 600 * 1024
BOX_COLOUR = (0, 0, 255)  # red in BGR: what operators expect an alarm box to be


def draw(
    image: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], str]], when: datetime | None
):
    """A copy of ``image`` with each (box, caption) drawn, and the time in the corner."""
    out = image.copy()
    thickness = max(1, round(image.shape[1] / 400))
    for (x, y, w, h), caption in boxes:
        p1, p2 = (int(x), int(y)), (int(x + w), int(y + h))
        cv2.rectangle(out, p1, p2, BOX_COLOUR, thickness)
        if caption:
            origin = (p1[0], max(12, p1[1] - 4))
            cv2.putText(out, caption, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOUR, 1, cv2.LINE_AA)
    if when is not None:
        stamp = visible_stamp(when)
        cv2.putText(
            out, stamp, (8, out.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA
        )
        cv2.putText(
            out, stamp, (8, out.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


def visible_stamp(when: datetime) -> str:
    """The time drawn on a snapshot, in ``when``'s own time zone (the site's: what the inspector who shows it
    in a protocol reads), with its offset so that nobody has to guess: ``2026-12-05 12:47:19 UTC+05:00``."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: give the snapshot's time with its time zone")
    offset = when.strftime("%z")  # +0500
    zone = "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"
    return f"{when:%Y-%m-%d %H:%M:%S} {zone}"


def encode_jpeg(
    image: np.ndarray, quality: int = 85, max_bytes: int = MAX_SNAPSHOT_BYTES
) -> tuple[bytes, int, int]:
    """(JPEG, width, height) at ``quality``, lowered (then the image halved) until it fits in ``max_bytes``."""
    while True:
        for q in range(quality, 29, -15):
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
            if not ok:
                raise ValueError("OpenCV could not encode the frame as JPEG")
            if len(data) <= max_bytes:
                return data.tobytes(), image.shape[1], image.shape[0]
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def snapshot(
    image: np.ndarray,
    boxes: list[tuple[tuple[float, float, float, float], str]],
    when: datetime | None = None,
    quality: int = 85,
) -> tuple[bytes, int, int]:
    """The event's snapshot: (JPEG bytes, width, height)."""
    return encode_jpeg(draw(image, boxes, when), quality)
