"""The site's own map tiles: read from an XYZ folder, an MBTiles file and a PMTiles archive built here with
Pillow, served by central with the right headers, and drawn by the map page in a real Chromium."""

from __future__ import annotations

import pytest
from support import tiles as tileset
from support.browser import SCREENSHOTS, chromium, log_in, wait_until
from support.web import login, make_central

from kuzet.central.tiles import TileSourceError, open_tiles
from kuzet.central.web import create_app

PAVLODAR = (52.2873, 76.9674)
KINDS = ("xyz", "mbtiles", "pmtiles")


@pytest.fixture(scope="module")
def tiles():
    return tileset.tiles_around(*PAVLODAR, radius=4)


def build(kind: str, folder, tiles):
    if kind == "xyz":
        return tileset.write_xyz(folder / "xyz", tiles)
    if kind == "mbtiles":
        return tileset.write_mbtiles(folder / "city.mbtiles", tiles)
    return tileset.write_pmtiles(folder / "city.pmtiles", tiles)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_answers_every_tile_it_holds_and_none_for_others(kind, tmp_path, tiles):
    source = open_tiles(build(kind, tmp_path, tiles))
    assert (source.info.format, source.info.min_zoom, source.info.max_zoom) == ("png", 13, 15)
    for (z, x, y), data in tiles.items():
        assert source.get(z, x, y) == data, (z, x, y)
    z, x, y = next(iter(tiles))
    assert source.get(z, x + 100, y) is None
    assert source.get(12, 0, 0) is None
    assert source.get(z, -1, y) is None and source.get(z, 1 << z, y) is None


def test_sources_that_cannot_be_used_say_why(tmp_path, tiles):
    from pmtiles.tile import TileType

    with pytest.raises(TileSourceError, match="no such tile folder"):
        open_tiles(tmp_path / "missing.mbtiles")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TileSourceError, match="no zoom folders"):
        open_tiles(tmp_path / "empty")
    (tmp_path / "junk.mbtiles").write_bytes(b"not a database at all" * 100)
    with pytest.raises(TileSourceError, match="not an MBTiles file"):
        open_tiles(tmp_path / "junk.mbtiles")
    (tmp_path / "junk.pmtiles").write_bytes(b"\0" * 200)
    with pytest.raises(TileSourceError, match="not a PMTiles v3 file"):
        open_tiles(tmp_path / "junk.pmtiles")
    vector = tileset.write_pmtiles(tmp_path / "vector.pmtiles", tiles, tile_type=TileType.MVT)
    with pytest.raises(TileSourceError, match="MVT tiles cannot be shown"):
        open_tiles(vector)
    (tmp_path / "city.geojson").write_text("{}")
    with pytest.raises(TileSourceError, match="give a tile folder"):
        open_tiles(tmp_path / "city.geojson")


def client_for(tmp_path, **map_section):
    central = make_central(tmp_path, map=map_section)
    client = create_app(central).test_client()
    return central, client


@pytest.mark.parametrize("kind", KINDS)
def test_central_serves_tiles_with_type_caching_and_404(kind, tmp_path, tiles):
    path = build(kind, tmp_path, tiles)
    central, client = client_for(tmp_path, tiles=str(path))
    (z, x, y), data = next(iter(tiles.items()))
    assert client.get(f"/map/tiles/{z}/{x}/{y}").status_code == 302  # to the log-in page: users only
    login(client, "operator")
    response = client.get(f"/map/tiles/{z}/{x}/{y}")
    assert response.status_code == 200 and response.data == data
    assert response.content_type == "image/png"
    assert (
        "private" in response.headers["Cache-Control"]
        and "max-age=604800" in response.headers["Cache-Control"]
    )
    etag = response.headers["ETag"]
    again = client.get(f"/map/tiles/{z}/{x}/{y}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    missing = client.get(f"/map/tiles/{z}/{x + 100}/{y}")
    assert missing.status_code == 404 and missing.content_type.startswith("text/plain")
    assert (
        "max-age=3600" in missing.headers["Cache-Control"]
    )  # the map's edge is not asked for again and again
    assert client.get("/map/tiles/3/99/0").status_code == 404
    page = client.get("/map").get_data(as_text=True)
    assert 'data-tile-url="/map/tiles/{z}/{x}/{y}"' in page and 'data-tile-max-zoom="15"' in page
    central.close()


def test_a_relative_path_is_in_the_data_directory_and_a_broken_source_falls_back_to_the_grid(tmp_path, tiles):
    central, client = client_for(tmp_path, tiles="city.mbtiles")
    login(client, "operator")
    page = client.get("/map").get_data(as_text=True)
    assert 'data-tile-url=""' in page and "city.mbtiles: no such tile folder or file" in page
    assert client.get("/map/tiles/13/0/0").status_code == 404
    central.close()
    tileset.write_mbtiles(tmp_path / "data" / "city.mbtiles", tiles)
    central, client = client_for(tmp_path, tiles="city.mbtiles")
    login(client, "operator")
    assert 'data-tile-url="/map/tiles/{z}/{x}/{y}"' in client.get("/map").get_data(as_text=True)
    central.close()


def test_tiles_and_a_tile_server_together_are_refused():
    from pydantic import ValidationError

    from kuzet.central.config import CentralConfig

    with pytest.raises(ValidationError, match="either tiles"):
        CentralConfig.model_validate({"map": {"tiles": "x.pmtiles", "tile_url": "https://t/{z}/{x}/{y}.png"}})


@pytest.mark.browser
@pytest.mark.parametrize("kind", KINDS)
def test_the_map_page_loads_the_sites_tiles_in_chromium(kind, tmp_path, tiles):
    from selenium.webdriver.common.by import By

    from kuzet.central.web.server import WebServer

    path = build(kind, tmp_path, tiles)
    central = make_central(tmp_path, map={"tiles": str(path), "zoom": 14})
    server = WebServer(central, host="127.0.0.1", port=0).start()
    driver = chromium()
    try:
        log_in(driver, server.url, "operator")
        driver.get(server.url + "/map")
        loaded = """return [...document.querySelectorAll('img.leaflet-tile')]
            .filter(i => i.complete && i.naturalWidth > 0 && i.src.includes('/map/tiles/')).length"""
        wait_until(driver, lambda d: d.execute_script(loaded) >= 12, "the site's tiles loaded")
        failed = driver.execute_script(
            "return [...document.querySelectorAll('img.leaflet-tile')].filter(i => i.complete && i.naturalWidth === 0).length"
        )
        assert failed == 0
        assert not driver.find_elements(By.CSS_SELECTOR, "#map.no-tiles")
        driver.save_screenshot(str(SCREENSHOTS / f"map-tiles-{kind}.png"))
    finally:
        driver.quit()
        server.stop()
        central.close()
