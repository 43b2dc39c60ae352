"""A small real tile set around a place, drawn with Pillow and packed the three ways central reads: an XYZ
folder, an MBTiles file and a PMTiles archive (with the ``pmtiles`` package's writer)."""

from __future__ import annotations

import io
import math
import sqlite3
from pathlib import Path


def tile_xy(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The Web Mercator tile holding the place (the slippy-map formula)."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def png_tile(z: int, x: int, y: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (256, 256), (226, 222, 210))
    draw = ImageDraw.Draw(image)
    for step in range(0, 256, 64):  # "streets"
        draw.line([(step, 0), (step, 255)], fill=(255, 255, 255), width=6)
        draw.line([(0, step), (255, step)], fill=(255, 255, 255), width=6)
    draw.rectangle([0, 0, 255, 255], outline=(150, 150, 150))
    draw.text((10, 10), f"{z}/{x}/{y}", fill=(60, 60, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def tiles_around(
    lat: float, lon: float, zooms=(13, 14, 15), radius: int = 4
) -> dict[tuple[int, int, int], bytes]:
    tiles = {}
    for z in zooms:
        cx, cy = tile_xy(lat, lon, z)
        for x in range(cx - radius, cx + radius + 1):
            for y in range(cy - radius, cy + radius + 1):
                tiles[(z, x, y)] = png_tile(z, x, y)
    return tiles


def write_xyz(folder: Path, tiles: dict) -> Path:
    for (z, x, y), data in tiles.items():
        path = folder / str(z) / str(x) / f"{y}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def write_mbtiles(path: Path, tiles: dict) -> Path:
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE metadata (name TEXT, value TEXT);"
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);"
        "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
    )
    db.executemany(
        "INSERT INTO metadata VALUES (?, ?)", [("name", "test"), ("format", "png"), ("type", "baselayer")]
    )
    db.executemany(  # MBTiles counts rows from the south (TMS)
        "INSERT INTO tiles VALUES (?, ?, ?, ?)",
        [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()],
    )
    db.commit()
    db.close()
    return path


def write_pmtiles(path: Path, tiles: dict, tile_type=None) -> Path:
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    zooms = [z for z, _, _ in tiles]
    with path.open("wb") as file:
        writer = Writer(file)
        for tile_id, data in sorted((zxy_to_tileid(*k), v) for k, v in tiles.items()):
            writer.write_tile(tile_id, data)
        writer.finalize(
            {
                "tile_type": tile_type or TileType.PNG,
                "tile_compression": Compression.NONE,
                "min_zoom": min(zooms),
                "max_zoom": max(zooms),
                "min_lon_e7": int(-180e7),
                "min_lat_e7": int(-85e7),
                "max_lon_e7": int(180e7),
                "max_lat_e7": int(85e7),
                "center_zoom": max(zooms),
                "center_lon_e7": 0,
                "center_lat_e7": 0,
            },
            {"attribution": "test tiles"},
        )
    return path
