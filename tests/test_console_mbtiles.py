"""A local MBTiles file as the console's base map: tiles served behind the login with the TMS row flipped to
Leaflet's XYZ, their type by magic bytes; the page uses it instead of the hillshade; a bad file is one line."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_console_web import login, operators_db  # noqa: F401  (operators_db is a fixture)

from pipeline.console.config import ConsoleConfig
from pipeline.console.mbtiles import MBTiles
from pipeline.console.store import Store
from pipeline.console.web import create_app
from pipeline.errors import UserError


def tile(ext: str, bgr: tuple[int, int, int]) -> bytes:
    ok, buf = cv2.imencode(ext, np.full((256, 256, 3), bgr, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def write_mbtiles(path: Path) -> Path:
    """Zoom 1: the north-west tile red PNG, the south-east tile blue JPEG (rows in TMS order: 0 = south)."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)", [("name", "county"), ("format", "png"),
                                                             ("attribution", "县测绘队")])
        db.execute("INSERT INTO tiles VALUES (1, 0, 1, ?)", (tile(".png", (0, 0, 255)),))
        db.execute("INSERT INTO tiles VALUES (1, 1, 0, ?)", (tile(".jpg", (255, 0, 0)),))
    return path


def test_tiles_are_served_in_xyz_order_behind_the_login(tmp_path: Path, operators_db: Path) -> None:  # noqa: F811
    db = tmp_path / "r.sqlite"
    shutil.copyfile(operators_db, db)
    store = Store(f"sqlite:///{db}")
    try:
        config = ConsoleConfig.model_validate({
            "database_url": f"sqlite:///{db}",
            "web": {"mbtiles_path": str(write_mbtiles(tmp_path / "county.mbtiles")),
                    "hillshade": {"dem_path": str(tmp_path / "not-read.tif")}}})
        client = create_app(config, store).test_client()  # the hillshade is not made: the MBTiles win
        assert client.get("/map/tiles/1/0/0").status_code == 302  # login first
        login(client, "alice", "alice-password")
        page = client.get("/").get_data(as_text=True)
        assert '"mbtiles": {"url": "/map/tiles/{z}/{x}/{y}", "min_zoom": 1, "max_zoom": 1' in page
        assert '"hillshade": null' in page and "县测绘队" in page
        nw = client.get("/map/tiles/1/0/0")
        assert nw.status_code == 200 and nw.mimetype == "image/png"
        img = cv2.imdecode(np.frombuffer(nw.data, np.uint8), cv2.IMREAD_COLOR)
        assert tuple(img[128, 128]) == (0, 0, 255)  # the red one: TMS row 1 is XYZ row 0
        se = client.get("/map/tiles/1/1/1")
        assert se.status_code == 200 and se.mimetype == "image/jpeg"
        for path in ("/map/tiles/1/0/1", "/map/tiles/1/2/0", "/map/tiles/31/0/0", "/map/tiles/0/0/0"):
            assert client.get(path).status_code == 404, path
    finally:
        store.close()


@pytest.mark.parametrize(("content", "expected"), [
    (None, "an existing MBTiles file"),
    (b"not a database at all, just text" * 10, "an MBTiles file"),
])
def test_a_bad_mbtiles_file_is_one_line(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "x.mbtiles"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        MBTiles(path)
    assert "web.mbtiles_path" in str(err.value) and expected in str(err.value) and "\n" not in str(err.value)
