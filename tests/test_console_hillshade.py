"""The console's offline base map (issue 18.7): a hillshade of the DEM as the boxes read it (rasterio, any
CRS), served at /map/hillshade.png and drawn by the page, with the zones' and towers' names, without any
request leaving the machine (a real console process and Mosquitto, Chromium)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import Broker, free_port, wait_port
from test_console_browser import CHROME_ARGS, CHROMIUM, LEAFLET

from pipeline.console.hillshade import render, shade
from pipeline.errors import UserError
from pipeline.geo import synthetic as syn
from pipeline.geo.coords import LocalFrame

ROOT = Path(__file__).resolve().parents[1]
HILL_M = 400.0
HILL_SIGMA_M = 1500.0


def hill(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    return 1000.0 + HILL_M * np.exp(-(east**2 + north**2) / (2 * HILL_SIGMA_M**2))


@pytest.fixture(scope="module")
def hill_dem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A round hill at the synthetic origin, in a Gauss-Krüger CRS (EPSG:4545) as county DEMs often are."""
    return syn.write_dem(tmp_path_factory.mktemp("dem") / "hill.tif", half_m=5000, step_m=25, height_fn=hill)


def flank_px(h: np.ndarray, bounds: tuple[tuple[float, float], tuple[float, float]], east_m: float,
             north_m: float) -> int:
    """The image's grey value at east/north metres from the hill top."""
    (south, west), (north, east) = bounds
    lat, lon = LocalFrame(syn.ORIGIN_LAT, syn.ORIGIN_LON).to_wgs84(east_m, north_m)
    row = int((north - float(lat)) / (north - south) * h.shape[0])
    col = int((float(lon) - west) / (east - west) * h.shape[1])
    return int(h[row, col, 0])


@pytest.mark.parametrize(("azimuth_deg", "bright", "dark"), [
    (315.0, (-1, 1), (1, -1)),   # lit from the north-west: the NW flank is bright, the SE flank dark
    (135.0, (1, -1), (-1, 1)),   # from the south-east: the other way round
    (45.0, (1, 1), (-1, -1)),    # from the north-east
])
def test_the_shaded_png_follows_the_dem(hill_dem: Path, azimuth_deg: float, bright: tuple[int, int],
                                        dark: tuple[int, int]) -> None:
    h = render(hill_dem, max_side_px=400, azimuth_deg=azimuth_deg, altitude_deg=45.0)
    img = cv2.imdecode(np.frombuffer(h.png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (*h.shape_hw, 4) and max(h.shape_hw) == 400
    (south, west), (north, east) = h.bounds
    assert south < syn.ORIGIN_LAT < north and west < syn.ORIGIN_LON < east
    d = HILL_SIGMA_M / np.sqrt(2)  # along the diagonal, one sigma from the top: the steepest part
    lit = flank_px(img, h.bounds, bright[0] * d, bright[1] * d)
    shadow = flank_px(img, h.bounds, dark[0] * d, dark[1] * d)
    flat = flank_px(img, h.bounds, 4200, 0)  # far out: nearly level ground
    assert lit > flat + 15 and flat > shadow + 15, (lit, flat, shadow)  # cos(45° ∓ 9°) vs cos 45°
    assert abs(flat - 255 * np.sin(np.radians(45))) < 6  # level ground: sin(altitude)


def test_level_ground_is_sin_altitude_and_outside_is_transparent() -> None:
    z = np.full((50, 60), 800.0)
    z[:, :5] = np.nan
    b = shade(z, 30.0, 30.0, 315.0, 30.0)
    assert np.allclose(b[:, 6:], 0.5) and np.isnan(b[:, :4]).all()


def test_a_missing_dem_is_one_line_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        render(tmp_path / "nope.tif")
    assert "web.hillshade.dem_path" in str(err.value) and "\n" not in str(err.value)


def test_page_draws_the_hillshade_and_place_names_offline(hill_dem: Path, broker: Broker, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists() or not LEAFLET.exists():
        pytest.fail("Chromium or vendored Leaflet missing: run `bash scripts/setup.sh --dev`")
    frame = LocalFrame(syn.ORIGIN_LAT, syn.ORIGIN_LON)
    ring = [frame.to_wgs84(e, n) for e, n in ((-600, -600), (600, -600), (600, 600), (-600, 600), (-600, -600))]
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "z.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"id": "hill-mine", "name": "北山关闭矿", "kind": "closed_mine"},
        "geometry": {"type": "Polygon", "coordinates": [[[float(lon), float(lat)] for lat, lon in ring]]}}]}),
        encoding="utf-8")
    port = free_port()
    tower_lat, tower_lon = frame.to_wgs84(-2500.0, 1500.0)
    cfg = {"database_url": f"sqlite:///{tmp_path / 'register.sqlite'}",
           "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"console-hs-{port}",
                    "reconnect_max_s": 1},
           "boxes": [{"id": "edge-1", "zones": [str(zones)], "towers": [
               {"id": "cam1", "name": "西岭塔", "lat": float(tower_lat), "lon": float(tower_lon)}]}],
           "web": {"host": "127.0.0.1", "port": port, "poll_s": 0.3,
                   "hillshade": {"dem_path": str(hill_dem), "max_side_px": 512}}}
    path = tmp_path / "console.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False))
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "console", "adduser", "--config", str(path), "alice",
                          "--password-env", "PW"], env=dict(os.environ, PW="alice-password"), capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "console.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "console", "--config", str(path)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    outside: list[str] = []
    try:
        wait_port(port, 60)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
            try:
                ctx = browser.new_context(locale="zh-CN")
                assert ctx.request.get(base + "/map/hillshade.png", max_redirects=0).status == 302  # login first

                def offline(route):  # type: ignore[no-untyped-def]
                    if route.request.url.startswith(base):
                        route.continue_()
                    else:
                        outside.append(route.request.url)
                        route.abort()

                ctx.route("**/*", offline)
                page = ctx.new_page()
                page.goto(base + "/")
                page.fill("#username", "alice")
                page.fill("#password", "alice-password")
                page.click("#login")
                img = page.locator("img.hillshade")
                expect(img).to_be_visible()
                deadline = time.monotonic() + 20  # (wait_for_function polls with eval, which the page's CSP refuses)
                while img.evaluate("i => i.naturalWidth") == 0 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert img.evaluate("i => i.naturalWidth") == 512
                for name in ("北山关闭矿", "西岭塔"):  # once each, however often the map data was loaded
                    expect(page.locator(f'[data-place="{name}"]')).to_have_count(1)
                    expect(page.locator(f'[data-place="{name}"]')).to_be_visible()
                resp = ctx.request.get(base + "/map/hillshade.png")
                assert resp.status == 200 and resp.headers["content-type"] == "image/png"
                png = cv2.imdecode(np.frombuffer(resp.body(), np.uint8), cv2.IMREAD_UNCHANGED)
                assert png.shape[2] == 4 and png.shape[1] == 512
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert outside == []
