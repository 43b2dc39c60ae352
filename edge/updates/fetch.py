"""Bring an update bundle to the device: download it from an ``http(s)://`` URL (central, or a technician's
laptop on the same network) or take a file already on the device.

The transport needs no trust: the bundle's signature is checked before anything is installed. What the
transport must not do is fill the SD card, so a download is refused when the server announces more than the
limit and cut off as soon as it sends more.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

CHUNK = 64 * 1024


class FetchError(ValueError):
    """The bundle could not be brought to the device; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def fetch_bundle(
    *, url: str | None, path: str | None, downloads: Path, max_bytes: int, timeout_s: float = 60.0
) -> tuple[Path, bool]:
    """(the bundle file, whether it is a download the caller should delete afterwards)."""
    if bool(url) == bool(path):
        raise FetchError(
            "give the bundle as exactly one of args.url (http/https) or args.path (on the device)"
        )
    if path:
        local = Path(path)
        if not local.is_file():
            raise FetchError(f"{path}: no such file on the device")
        if local.stat().st_size > max_bytes:
            raise FetchError(f"{path} is larger than the {max_bytes // 2**20} MiB an update may be")
        return local, False
    return download(url, downloads, max_bytes, timeout_s), True


def download(url: str, downloads: Path, max_bytes: int, timeout_s: float) -> Path:
    if urlparse(url).scheme not in ("http", "https"):
        raise FetchError(f"{url!r}: only http:// and https:// URLs are fetched")
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / f"bundle-{os.getpid()}-{os.urandom(4).hex()}.tar"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) > max_bytes:
                raise FetchError(
                    f"{url} is {int(announced) / 2**20:.1f} MiB, more than the {max_bytes // 2**20} MiB "
                    "an update may be; not downloaded"
                )
            received = 0
            with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as sink:
                while block := response.read(CHUNK):
                    received += len(block)
                    if received > max_bytes:
                        raise FetchError(
                            f"{url} sent more than the {max_bytes // 2**20} MiB an update may be; download stopped"
                        )
                    sink.write(block)
            if announced is not None and announced.isdigit() and received != int(announced):
                raise FetchError(f"{url}: the download ended after {received} of {announced} bytes")
    except FetchError:
        target.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise FetchError(f"{url} could not be downloaded: {getattr(exc, 'reason', exc)}") from None
    return target
