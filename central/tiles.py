"""Map tiles from local files, for an operations centre that may have no internet: an XYZ folder
(``{z}/{x}/{y}.png``), an MBTiles file (SQLite, rows in TMS order) or a PMTiles file (one archive read with
the ``pmtiles`` package). ``open_tiles(path)`` picks the reader by what the path is; each answers ``get(z, x,
y)`` with the tile's bytes or None. Raster tiles only: the page draws them with Leaflet, which has no vector
renderer. How a technician makes one: docs/map.md."""

from __future__ import annotations

import gzip
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_FORMAT_NAMES = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}


class TileSourceError(ValueError):
    """The configured tile source cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class TileInfo:
    format: str  # a key of CONTENT_TYPES
    min_zoom: int
    max_zoom: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def _raster_format(name: str, where: str) -> str:
    found = _FORMAT_NAMES.get(name.lower().strip())
    if found is None:
        raise TileSourceError(
            f"{where}: tiles of format {name!r} cannot be shown; give raster tiles (png, jpg or webp)"
        )
    return found


def _in_range(z: int, x: int, y: int) -> bool:
    return 0 <= z <= 30 and 0 <= x < (1 << z) and 0 <= y < (1 << z)


class XyzFolder:
    """A folder of ``{z}/{x}/{y}.{png|jpg|webp}`` files, as tile downloaders and renderers write them."""

    def __init__(self, root: Path):
        self.root = root
        zooms = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
        if not zooms:
            raise TileSourceError(f"{root}: no zoom folders (0, 1, ...) in this tile folder")
        sample = next((p for p in root.glob(f"{zooms[0]}/*/*") if p.is_file()), None)
        if sample is None:
            raise TileSourceError(f"{root}: zoom folder {zooms[0]} holds no tiles")
        self.extension = sample.suffix.lstrip(".")
        self.info = TileInfo(_raster_format(self.extension, str(root)), zooms[0], zooms[-1])

    def get(self, z: int, x: int, y: int) -> bytes | None:
        if not _in_range(z, x, y):
            return None
        path = self.root / str(z) / str(x) / f"{y}.{self.extension}"
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None


class MbTiles:
    """An MBTiles 1.3 file: ``tiles(zoom_level, tile_column, tile_row, tile_data)`` with rows counted from
    the south (TMS), and the format in ``metadata``. Opened read-only, one connection per server thread."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        try:
            db = self._db()
            metadata = dict(db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        except sqlite3.DatabaseError as error:
            raise TileSourceError(f"{path}: not an MBTiles file ({error})") from None
        if zooms[0] is None:
            raise TileSourceError(f"{path}: the MBTiles file holds no tiles")
        self.info = TileInfo(_raster_format(metadata.get("format", "png"), str(path)), *zooms)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            self._local.db = db
        return db

    def get(self, z: int, x: int, y: int) -> bytes | None:
        if not _in_range(z, x, y):
            return None
        row = (
            self._db()
            .execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, (1 << z) - 1 - y),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])


class PmTiles:
    """A PMTiles v3 archive, memory-mapped and read with the ``pmtiles`` package's reader."""

    def __init__(self, path: Path):
        from pmtiles.reader import MmapSource, Reader
        from pmtiles.tile import Compression, MagicNumberNotFound, SpecVersionUnsupported, TileType

        self._file = path.open("rb")
        try:
            self._reader = Reader(MmapSource(self._file))
            header = self._reader.header()
        except (MagicNumberNotFound, SpecVersionUnsupported, ValueError, UnicodeDecodeError) as error:
            self._file.close()
            raise TileSourceError(f"{path}: not a PMTiles v3 file ({error})") from None
        kind = header["tile_type"]
        names = {TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp"}
        if kind not in names:
            self._file.close()
            raise TileSourceError(
                f"{path}: {kind.name} tiles cannot be shown; give raster tiles (png, jpg, webp)"
            )
        compression = header["tile_compression"]
        if compression not in (Compression.NONE, Compression.UNKNOWN, Compression.GZIP):
            self._file.close()
            raise TileSourceError(f"{path}: tiles compressed with {compression.name} are not supported")
        self._gzip = compression == Compression.GZIP
        self.info = TileInfo(names[kind], header["min_zoom"], header["max_zoom"])

    def get(self, z: int, x: int, y: int) -> bytes | None:
        if not _in_range(z, x, y):
            return None
        data = self._reader.get(z, x, y)
        if data is None:
            return None
        return gzip.decompress(data) if self._gzip else bytes(data)


def open_tiles(path: Path) -> XyzFolder | MbTiles | PmTiles:
    """The reader for ``path``: a folder is XYZ, ``.mbtiles`` and ``.pmtiles`` by their suffix."""
    if not path.exists():
        raise TileSourceError(f"{path}: no such tile folder or file")
    if path.is_dir():
        return XyzFolder(path)
    suffix = path.suffix.lower()
    if suffix == ".mbtiles":
        return MbTiles(path)
    if suffix == ".pmtiles":
        return PmTiles(path)
    raise TileSourceError(f"{path}: give a tile folder, an .mbtiles or a .pmtiles file")
