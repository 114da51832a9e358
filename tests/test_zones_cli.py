"""`minewatch zones …` driven as a user would: subprocesses, exit codes, output, and the zones folder after."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import shapefile
from pyproj import CRS, Transformer

from pipeline.geo.coords import LocalFrame
from tests.conftest import ROOT
from tests.rtsp_fixture import rtsp_clip_fixture, rtsp_server_fixture  # noqa: F401

LAT0, LON0 = 38.70, 111.60
FRAME = LocalFrame(LAT0, LON0)
GK = "EPSG:4525"  # CGCS2000 3° Gauss-Krüger zone 37 (with zone prefix), the tower's zone


def ring_lonlat(ring_en: list[tuple[float, float]], decimals: int = 8) -> list[list[float]]:
    out = []
    for e, n in [*ring_en, ring_en[0]]:
        lat, lon = FRAME.to_wgs84(e, n)
        out.append([round(lon, decimals), round(lat, decimals)])
    return out


def zone_doc(zone_id: str, kind: str, ring_en: list[tuple[float, float]], **props: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": {"id": zone_id, "name": props.pop("name", zone_id), "kind": kind} | props,
        "geometry": {"type": "Polygon", "coordinates": [ring_lonlat(ring_en)]},
    }]}


def box(e0: float, n0: float, e1: float, n1: float) -> list[tuple[float, float]]:
    return [(e0, n0), (e1, n0), (e1, n1), (e0, n1)]


@pytest.fixture(name="site")
def site_fixture(tmp_path: Path) -> Path:
    """cameras.yaml with one tower looking east, and two zones: one in its view, one behind it."""
    zones = tmp_path / "zones"
    zones.mkdir()
    docs = {
        "pit": zone_doc("pit", "closed_mine", box(60, -40, 120, 40), name="东沟 closed pit", township="城关镇",
                        responsible={"name": "王伟", "phone": "13800000000"}),
        "west": zone_doc("west", "illegal_site", box(-300, -50, -200, 50)),
    }
    for zone_id, doc in docs.items():
        (zones / f"{zone_id}.geojson").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "cameras.yaml").write_text(f"""
cameras:
  - id: t1
    source: {tmp_path / 'clip.mp4'}
    lat: {LAT0}
    lon: {LON0}
    ground_elevation_m: 1450
    mast_height_m: 25
    pan_deg: 90
    tilt_deg: -8
    hfov_deg: 60
    analysis_fps: 2
detector:
  model_path: {tmp_path / 'model.onnx'}
  providers: [CPUExecutionProvider]
alerts:
  confirm_hits: 2
  confirm_window: 3
zones:
  dir: zones
""", encoding="utf-8")
    return tmp_path


def zones(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "zones", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def zones_here(*args: str, cwd: Path, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess[str]:
    """The same command through the same entry point (``pipeline.cli.main``), in this process: for the long
    tables of mistakes, where a fresh interpreter per row would only add seconds."""
    from pipeline.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = main(["zones", *args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image)


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(path.name.encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- list, show


def test_list_table_and_json(site: Path) -> None:
    res = zones("list", cwd=site)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "KIND", "NAME", "TOWNSHIP", "RESPONSIBLE", "AREA", "SEEN", "BY"]
    pit = next(line for line in lines if line.startswith("pit "))
    assert "closed_mine" in pit and "城关镇" in pit and "王伟 13800000000" in pit and "4,800 m²" in pit
    assert pit.rstrip().endswith("t1")
    west = next(line for line in lines if line.startswith("west "))
    assert west.rstrip().endswith("-")  # behind the tower: no camera sees it
    res = zones("list", "--json", cwd=site)
    data = {z["id"]: z for z in json.loads(res.stdout)}
    assert data["pit"]["area_m2"] == pytest.approx(60 * 80, rel=1e-3)
    assert data["pit"]["seen_by"] == [{"camera": "t1", "preset": None}]
    assert data["west"]["seen_by"] == []
    assert data["pit"]["responsible"] == {"name": "王伟", "phone": "13800000000"}


def test_show_and_unknown_id(site: Path) -> None:
    res = zones("show", "pit", "--json", cwd=site)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["cameras"] == [{"camera": "t1", "distance_m": pytest.approx(60.0, abs=0.5),
                                "bearing_deg": pytest.approx(90.0, abs=0.5)}]
    assert info["classes"] == ["excavator", "truck"]
    res = zones("show", "pit", cwd=site)
    assert "kind         closed_mine (rule closed_mine)" in res.stdout
    res = zones("show", "nope", cwd=site)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"minewatch zones: {site / 'zones'}: zone nope: expected the id of a zone (pit, west), found nope"
    ]


# --------------------------------------------------------------------------------------------- import


def write_gk_shapefile(path: Path, parcels: list[tuple[str, str, list[tuple[float, float]]]]) -> None:
    to_gk = Transformer.from_crs("EPSG:4326", GK, always_xy=True)
    with shapefile.Writer(str(path), shapeType=shapefile.POLYGON, encoding="gbk") as w:
        w.field("KQBH", "C", 30)
        w.field("KQMC", "C", 60)
        for code, name, ring_en in parcels:
            ring = [to_gk.transform(lon, lat) for lon, lat in ring_lonlat(ring_en, decimals=12)]
            w.poly([ring[::-1]])  # clockwise: a shapefile exterior
            w.record(code, name)
    path.with_suffix(".prj").write_text(CRS.from_user_input(GK).to_wkt("WKT1_ESRI"))


def test_import_shapefile_in_gauss_kruger(site: Path) -> None:
    shp = site / "parcels.shp"
    write_gk_shapefile(shp, [("C1401", "北坡矿区", box(150, -30, 260, 30)),
                             ("C1402", "南沟矿区", box(300, -200, 400, -100)),
                             ("C1403", "西山矿区", box(-400, -50, -300, 50))])
    res = zones("import", str(shp), "--crs", GK, "--kind", "closed_mine", "--id-field", "KQBH", "--name-field", "KQMC",
                "--id-prefix", "kl-", "--set", "township=城关镇", cwd=site)
    assert res.returncode == 0, res.stderr
    assert f"imported 3 zone(s) from {shp} ({GK} → WGS84)" in res.stdout
    assert f"{site / 'zones' / 'kl-C1403.geojson'}: (id=kl-C1403): warning: no camera or preset sees it" in res.stdout
    assert "kl-C1401): warning" not in res.stdout
    written = json.loads((site / "zones" / "kl-C1401.geojson").read_text(encoding="utf-8"))
    props = written["features"][0]["properties"]
    assert props == {"id": "kl-C1401", "name": "北坡矿区", "kind": "closed_mine", "township": "城关镇"}
    # back to local metres: the corners are where the survey put them, to a millimetre
    ring = np.array(written["features"][0]["geometry"]["coordinates"][0])
    east, north = FRAME.to_local_m(ring[:, 1], ring[:, 0])
    for want_e, want_n in [(150.0, -30.0), (260.0, -30.0), (260.0, 30.0), (150.0, 30.0)]:
        assert np.hypot(east - want_e, north - want_n).min() < 1e-3
    listed = {z["id"] for z in json.loads(zones("list", "--json", cwd=site).stdout)}
    assert listed == {"pit", "west", "kl-C1401", "kl-C1402", "kl-C1403"}
    # importing again is refused without --replace, and changes nothing
    before = folder_hash(site / "zones")
    res = zones("import", str(shp), "--kind", "closed_mine", "--id-field", "KQBH", "--id-prefix", "kl-", cwd=site)
    assert res.returncode == 2
    assert "zone kl-C1401: expected a new zone id (or --replace), found it exists already" in res.stderr
    assert folder_hash(site / "zones") == before
    res = zones("import", str(shp), "--kind", "illegal_site", "--id-field", "KQBH", "--id-prefix", "kl-",
                "--name-field", "KQMC", "--replace", cwd=site)
    assert res.returncode == 0, res.stderr
    assert json.loads((site / "zones" / "kl-C1402.geojson").read_text())["features"][0]["properties"]["kind"] == \
        "illegal_site"


def test_import_with_bad_features_writes_nothing(site: Path) -> None:
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "ok", "name": "fine"},
         "geometry": {"type": "Polygon", "coordinates": [ring_lonlat(box(100, 0, 200, 100))]}},
        {"type": "Feature", "properties": {"id": "pt"}, "geometry": {"type": "Point", "coordinates": [111.6, 38.7]}},
        {"type": "Feature", "properties": {"id": "bow"},
         "geometry": {"type": "Polygon", "coordinates": [ring_lonlat([(0, 0), (100, 100), (100, 0), (0, 100)])]}},
        {"type": "Feature", "properties": {"name": "no id"},
         "geometry": {"type": "Polygon", "coordinates": [ring_lonlat(box(300, 0, 400, 100))]}},
    ]}
    path = site / "survey.geojson"
    path.write_text(json.dumps(doc))
    before = folder_hash(site / "zones")
    res = zones("import", str(path), "--kind", "illegal_site", cwd=site)
    assert res.returncode == 2
    errs = res.stderr.strip().splitlines()
    assert errs == [f"minewatch zones: {path}: feature[1] (id=pt).geometry.type: expected Polygon or MultiPolygon,"
                    " found Point"]  # the reader stops at the file's structural errors first
    doc["features"].pop(1)
    path.write_text(json.dumps(doc))
    res = zones("import", str(path), "--kind", "illegal_site", cwd=site)
    assert res.returncode == 2
    errs = res.stderr.strip().splitlines()
    assert len(errs) == 2, errs
    assert errs[0].startswith(f"minewatch zones: {path}: feature[1] (id=bow).geometry: expected a valid polygon"
                              " (--fix repairs it with make_valid), found Self-intersection at lon 111.60")
    assert errs[1] == (f"minewatch zones: {path}: feature[2]: expected an id: a property `id` or --id-field FIELD"
                       " (fields: name), found nothing")
    assert folder_hash(site / "zones") == before
    assert not list((site / "zones").glob(".*"))  # no temp files


def test_import_wrong_crs_one_line(site: Path) -> None:
    to_gk = Transformer.from_crs("EPSG:4326", GK, always_xy=True)
    ring = [list(to_gk.transform(lon, lat)) for lon, lat in ring_lonlat(box(100, 0, 200, 100))]
    path = site / "gk.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {"id": "g"},
                                "geometry": {"type": "Polygon", "coordinates": [ring]}}))
    res = zones("import", str(path), "--crs", "EPSG:4546", "--kind", "closed_mine", cwd=site)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "the eastings carry a zone prefix 37: try --crs EPSG:4525" in res.stderr
    res = zones("import", str(path), "--kind", "closed_mine", cwd=site)
    assert res.returncode == 2
    assert "expected lon/lat degrees in EPSG:4326" in res.stderr  # no --crs: GeoJSON is WGS84


def test_export_kml_then_import_gives_the_same_files(site: Path) -> None:
    res = zones("export", "--format", "kml", "--out", str(site / "all.kml"), cwd=site)
    assert res.returncode == 0, res.stderr
    fresh = site / "fresh"
    res = zones("import", str(site / "all.kml"), "--zones-dir", str(fresh), cwd=site)
    assert res.returncode == 0, res.stderr
    # a first pass normalises the hand-written originals; a round trip through KML changes nothing more
    res = zones("export", "--format", "geojson", cwd=site)
    geo = json.loads(res.stdout)
    assert sorted(f["properties"]["id"] for f in geo["features"]) == ["pit", "west"]
    for path in sorted(fresh.glob("*.geojson")):
        original = json.loads((site / "zones" / path.name).read_text(encoding="utf-8"))
        again = json.loads(path.read_text(encoding="utf-8"))
        assert again["features"][0]["properties"] == original["features"][0]["properties"]
        a = np.array(again["features"][0]["geometry"]["coordinates"][0])
        b = np.array(original["features"][0]["geometry"]["coordinates"][0])
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-8 or \
            np.abs(a[::-1] - b).max() < 1e-8  # orientation normalised (RFC 7946)
    # and exporting the fresh folder as GeoJSON gives the same bytes as exporting the original
    res2 = zones("export", "--format", "geojson", "--zones-dir", str(fresh), cwd=site)
    assert res2.stdout == res.stdout


# --------------------------------------------------------------------------------------------- validate


def test_validate_clean_broken_and_fix(site: Path) -> None:
    res = zones("validate", cwd=site)
    assert res.returncode == 0, res.stderr
    assert "2 zone(s)" in res.stdout and "0 error(s)" in res.stdout
    assert "west.geojson: (id=west): warning: expected a zone at least one camera or preset sees" in res.stdout
    bow = zone_doc("bow", "closed_mine", [(100, -50), (200, 50), (200, -50), (100, 50)])
    (site / "zones" / "bow.geojson").write_text(json.dumps(bow))
    res = zones("validate", cwd=site)
    assert res.returncode == 2
    assert "bow.geojson: features[0] (id=bow).geometry: error: expected a valid polygon (no self-intersection)" \
        in res.stderr
    # an unfixable error elsewhere: --fix writes nothing at all
    bad_kind = zone_doc("q", "quarry", box(100, 100, 150, 150))
    (site / "zones" / "q.geojson").write_text(json.dumps(bad_kind))
    before = folder_hash(site / "zones")
    res = zones("validate", "--fix", cwd=site)
    assert res.returncode == 2
    assert "nothing written: 1 error(s) need a hand fix first" in res.stdout
    assert folder_hash(site / "zones") == before
    (site / "zones" / "q.geojson").unlink()
    res = zones("validate", "--fix", "--json", cwd=site)
    assert res.returncode == 0, res.stdout
    report = json.loads(res.stdout)
    assert [f["feature"] for f in report["fixed"]] == ["features[0] (id=bow).geometry"]
    assert report["written"] == [str(site / "zones" / "bow.geojson")]
    assert zones("validate", cwd=site).returncode == 0


# --------------------------------------------------------------------------------------------- edits


def test_add_set_remove(site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ring = " ".join(f"{lon},{lat}" for lon, lat in ring_lonlat(box(500, -20, 560, 20))[:-1])
    res = zones("add", "new-site", "--kind", "illegal_site", "--name", "新发现采砂点", "--coords", ring,
                "--set", "responsible.name=李强", cwd=site)
    assert res.returncode == 0, res.stderr
    assert "added new-site (illegal_site, 2,400 m²)" in res.stdout
    res = zones("set", "new-site", "township=城关镇", "responsible.phone=13900000000", "classes=excavator,person",
                "schedule=20:00-06:00", "permits=2026-12-01..2026-12-31 winter works", cwd=site)
    assert res.returncode == 0, res.stderr
    props = json.loads((site / "zones" / "new-site.geojson").read_text())["features"][0]["properties"]
    assert props == {"id": "new-site", "name": "新发现采砂点", "kind": "illegal_site", "township": "城关镇",
                     "responsible": {"name": "李强", "phone": "13900000000"}, "classes": ["excavator", "person"],
                     "schedule": ["20:00-06:00"],
                     "permits": [{"from": "2026-12-01", "to": "2026-12-31", "note": "winter works"}]}
    before = folder_hash(site / "zones")
    for args, message in [
        (("set", "new-site", "kind=quarry"),
         "kind: expected one of closed_mine, illegal_site, licensed_area, fire_watch, found quarry"),
        (("set", "new-site", "buffer_m=50"), "properties.buffer_m: expected buffer_m only on licensed_area zones"),
        (("set", "new-site", "colour=red"), "colour: expected one of id, name, kind"),
        (("set", "new-site", "schedule=25:00-26:00"), "schedule.windows[0]: expected hours 00-23"),
        (("set", "new-site", "name="), "name: expected a value (id, name and kind are required), found empty"),
        (("set", "nope", "name=x"), "zone nope: expected the id of a zone"),
        (("add", "pit", "--kind", "closed_mine", "--coords", ring), "zone pit: expected a new zone id (or --replace)"),
        (("add", "x", "--kind", "closed_mine", "--coords", "1,2 3,4"), "--coords: expected at least 3 points, found 2"),
        (("remove", "pit", "nope"), "zone nope: expected the id of a zone"),
    ]:
        res = zones_here(*args, cwd=site, capsys=capsys, monkeypatch=monkeypatch)
        assert res.returncode == 2, args
        assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, (args, res.stderr)
    assert folder_hash(site / "zones") == before
    res = zones("set", "new-site", "id=renamed", "schedule=", cwd=site)
    assert res.returncode == 0, res.stderr
    assert not (site / "zones" / "new-site.geojson").exists()
    renamed = json.loads((site / "zones" / "renamed.geojson").read_text())["features"][0]["properties"]
    assert renamed["id"] == "renamed" and "schedule" not in renamed
    res = zones("remove", "renamed", "west", cwd=site)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (site / "zones").iterdir()) == ["pit.geojson"]


# --------------------------------------------------------------------------------------------- preview


def test_preview_frame_file_and_map(site: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    frame = np.full((360, 640, 3), 90, np.uint8)
    cv2.imwrite(str(site / "frame.png"), frame)
    res = zones("preview", "t1", "--frame", str(site / "frame.png"), "--out", str(site / "p.png"), "--json", cwd=site)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["zones"] == ["pit"] and info["image_wh"] == [640, 360]
    image = read_png(site / "p.png")
    # the pit spans 60..120 m ahead: 100 m ahead lies on the centre column at this row (flat-ground pinhole)
    f = 320 / math.tan(math.radians(30))
    y = round(180 + f * math.tan(math.atan2(25, 70) - math.radians(8)))
    assert tuple(image[y, 320]) != (90, 90, 90)
    y_beyond = round(180 + f * math.tan(math.atan2(25, 160) - math.radians(8)))
    assert tuple(image[y_beyond, 320]) == (90, 90, 90)  # 160 m ahead: beyond the pit
    res = zones("preview", "--map", "--out", str(site / "m.png"), cwd=site)
    assert res.returncode == 0, res.stderr
    assert read_png(site / "m.png").shape == (1200, 1200, 3)
    for args, message in [
        (("preview", "t9", "--blank"), "cameras: expected a camera id (t1), found t9"),
        (("preview", "t1", "--preset", "east"), "expected a preset of camera t1 (none: a fixed camera), found east"),
        (("preview", "t1"), "expected a video file or stream PyAV can open"),  # its source clip does not exist
        (("preview", "t1", "--map"), "preview: --map: expected no CAMERA with --map"),
    ]:
        res = zones_here(*args, cwd=site, capsys=capsys, monkeypatch=monkeypatch)
        assert res.returncode == 2 and message in res.stderr, (args, res.stderr)


def test_preview_grabs_a_live_frame_over_rtsp(site: Path, rtsp_server: Any) -> None:
    config = site / "cameras.yaml"
    config.write_text(config.read_text().replace(f"source: {site / 'clip.mp4'}", f"source: {rtsp_server.url}"))
    res = zones("preview", "t1", "--json", cwd=site)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["image_wh"] == [320, 240]
    assert read_png(site / "preview-t1.png").shape == (240, 320, 3)


# --------------------------------------------------------------------------------------------- test


def bright_clip(path: Path, seconds: float = 5.0, fps: int = 2) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for _ in range(int(seconds * fps)):
            image = np.full((360, 640, 3), 220, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_replay_footage_through_the_pipeline(site: Path) -> None:
    from tests.test_detect_onnx import make_model

    # a real ONNX YOLO-format model whose one excavator sits at the centre of the network input with a
    # 16/64 box: in a 640x360 frame its bottom centre is at (320, 260), which is 86 m ahead on flat ground
    make_model(site / "model.onnx", names={0: "excavator", 1: "smoke"})
    bright_clip(site / "clip.mp4")
    res = zones("test", "--footage", str(site / "clip.mp4"), "--camera", "t1", "--json", cwd=site)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["summary"]["frames"] == 10
    excavators = [d for d in out["detections"] if d["class"] == "excavator"]
    assert len(excavators) == 10
    d = excavators[0]
    below = math.atan2(260 - 180, 320 / math.tan(math.radians(30))) + math.radians(8)
    ahead_m = 25 / math.tan(below)
    assert d["location"]["range_m"] == pytest.approx(ahead_m, abs=1.0)
    (pit,) = [z for z in d["zones"] if z["id"] == "pit"]
    assert pit["inside"] and pit["distance_to_boundary_m"] == pytest.approx(min(ahead_m - 60, 120 - ahead_m), abs=1.0)
    kinds = [(e["type"], e["rule"], e["zone"]) for e in out["events"]]
    assert ("new", "closed_mine", "pit") in kinds and ("end", "closed_mine", "pit") in kinds
    assert out["summary"]["alerts"] == 1
    # the size check is `minewatch coverage`'s row for this camera and preset (issue 16 item 3)
    (row,) = [r for r in out["size_check"]["rows"] if r["zone"] == "pit"]
    assert row["camera"] == "t1" and row["in_view_share"] > 0
    assert row["verdict"] == "watched" or row["verdict"].startswith("too small (zoom to hfov ≤")
    assert out["size_check"]["floor_source"].startswith(("model metadata", "config"))
    res = zones("test", "--footage", str(site / "clip.mp4"), "--camera", "t1", cwd=site)
    assert res.returncode == 0, res.stderr
    assert "pit in" in res.stdout and "closed_mine" in res.stdout and "1 alert(s)" in res.stdout
    assert "size check at this preset" in res.stdout and "zone pit: excavator" in res.stdout
    res = zones("test", "--footage", str(site / "missing.mp4"), "--camera", "t1", cwd=site)
    assert res.returncode == 2 and "missing.mp4: expected an existing video file, found no such file" in res.stderr


@pytest.mark.parametrize("before_command", [True, False])
@pytest.mark.parametrize("option", ["--zones-dir", "--config"])
def test_folder_options_count_before_or_after_the_command(site: Path, tmp_path_factory: pytest.TempPathFactory,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, option: str,
                                                          before_command: bool) -> None:
    """``zones --zones-dir X remove ID`` (the order `zones --help` shows) acts on X, not on the default folder."""
    other = tmp_path_factory.mktemp("other")
    shutil.copytree(site / "zones", other / "zones")
    (other / "cameras.yaml").write_text((site / "cameras.yaml").read_text(), encoding="utf-8")
    value = str(other / "zones") if option == "--zones-dir" else str(other / "cameras.yaml")
    args = [option, value, "remove", "west"] if before_command else ["remove", "west", option, value]
    res = zones_here(*args, cwd=site, capsys=capsys, monkeypatch=monkeypatch)
    assert res.returncode == 0, res.stderr
    assert not (other / "zones" / "west.geojson").exists()
    assert (site / "zones" / "west.geojson").exists()  # the default folder is untouched


def test_replay_tiles_frames_as_the_daemon_does(site: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`zones test` ran ``detector.detect([image])`` and so skipped a camera's ``tiling``: a tiled camera must
    see in replay exactly what the daemon's workers detect (pipeline.eval.hookup.detect_frame)."""
    from pipeline.config import load_config
    from pipeline.detect.onnx_detector import OnnxDetector
    from pipeline.eval.hookup import detect_frame
    from pipeline.types import Frame, Pose
    from pipeline.zones.replay import footage_frames
    from tests.test_detect_onnx import make_model

    make_model(site / "model.onnx", names={0: "excavator", 1: "smoke"})  # a box at the centre of every input
    bright_clip(site / "clip.mp4", seconds=2.0)
    config_path = site / "cameras.yaml"
    config_path.write_text(config_path.read_text().replace(
        "    analysis_fps: 2\n",
        "    analysis_fps: 2\n    tiling: {tile_px: 320, overlap_frac: 0.0, include_full_frame: false}\n"))
    res = zones_here("test", "--footage", str(site / "clip.mp4"), "--camera", "t1", "--json", cwd=site,
                     capsys=capsys, monkeypatch=monkeypatch)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["detections"]
    config = load_config(config_path)
    cam = config.cameras[0]
    detector = OnnxDetector(config.detector)
    expected = []
    for seq, (t_s, image) in enumerate(footage_frames(site / "clip.mp4", cam.analysis_fps, 0)):
        frame = Frame(cam.id, seq, t_s, image, Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg, None), t_s)
        dets = detect_frame(detector, frame, cam, config.detector.iou_threshold)
        expected += [(round(t_s, 3), [round(float(v), 1) for v in box]) for box in dets.xyxy]
        assert len(dets) > len(detector.detect([image])[0])  # tiles find what the whole frame does not
    assert sorted((r["t_s"], r["xyxy"]) for r in rows) == sorted(expected)
