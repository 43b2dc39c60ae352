"""The label a technician sticks on the device: a QR code holding the device id and name, with both printed
underneath in plain text (PNG), and the same QR drawn in the terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont


def label_payload(device_id: str, name: str, site: str) -> str:
    return json.dumps({"kuzet": 1, "id": device_id, "name": name, "site": site}, ensure_ascii=False)


def terminal(device_id: str, name: str, site: str) -> str:
    code = qrcode.QRCode(border=1)
    code.add_data(label_payload(device_id, name, site))
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue() + f"{device_id}  {name}\n"


# Device names are often Kazakh or Russian: Pillow's built-in font has no Cyrillic, DejaVu (Debian's
# fonts-dejavu-core, on almost every Linux laptop) has.
CYRILLIC_FONTS = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _font(size: int) -> ImageFont.ImageFont:
    for candidate in CYRILLIC_FONTS:
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def png(device_id: str, name: str, site: str, path: Path) -> Path:
    # A border of four modules: the quiet zone the QR standard asks for, so that any scanner finds the code.
    qr_image = (
        qrcode.make(label_payload(device_id, name, site), box_size=8, border=4).get_image().convert("RGB")
    )
    font = _font(22)
    text_height = 64
    label = Image.new("RGB", (max(qr_image.width, 360), qr_image.height + text_height), "white")
    label.paste(qr_image, ((label.width - qr_image.width) // 2, 0))
    draw = ImageDraw.Draw(label)
    draw.text((10, qr_image.height + 2), device_id, fill="black", font=font)
    draw.text((10, qr_image.height + 32), name[:40], fill="black", font=font)
    label.save(path)
    return path
