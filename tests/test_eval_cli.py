"""``minewatch eval`` end to end on ../shared/data (real clips, real ONNX model, the daemon's own stages)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.eval.report import parse_fmt
from pipeline.types import CLASSES

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "models" / "minewatch-starter.onnx"
CLIP = "smoke5"  # 20 frames, smoke and fire; one of the starter model's held-out videos


def model_and_map(shared: Path) -> tuple[Path, dict[str, str | None]]:
    """The starter model when it is there, else the COCO model with the classes it knows."""
    if STARTER.is_file():
        return STARTER, {c: c for c in CLASSES}
    return shared / "models" / "yolov8n_coco_640.onnx", {"person": "person", "truck": "truck"}


def write_config(tmp_path: Path, shared: Path, **detector: Any) -> Path:
    model, cmap = model_and_map(shared)
    data = {
        "cameras": [{"id": "template", "source": "placeholder.mp4", "lat": 38.7, "lon": 111.6,
                     "ground_elevation_m": 1450, "mast_height_m": 25, "pan_deg": 90, "tilt_deg": -8,
                     "hfov_deg": 60, "analysis_fps": 5}],
        "detector": {"model_path": str(model), "providers": ["CPUExecutionProvider"], "class_map": cmap,
                     "intra_op_threads": 2, **detector},
        "mqtt": {"enabled": False},
        "alerts": {"confirm_hits": 3, "confirm_window": 5},
        "zones": {"dir": str(tmp_path / "no-zones")},
    }
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def footage_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, Path]:
    shared = ROOT.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"needs ../shared/data ({shared})")
    tmp = tmp_path_factory.mktemp("eval")
    config = write_config(tmp, shared)
    out = tmp / "out"
    rc = main(["eval", "--config", str(config), "--footage", str(shared / "clips"), "--labels",
               str(shared / "clips"), "--clips", CLIP, "--out", str(out), "--no-progress"])
    return rc, out, shared


@pytest.mark.shared
def test_footage_report_files(footage_run: tuple[int, Path, Path]) -> None:
    rc, out, _ = footage_run
    assert rc == 0
    for name in ("report.json", "report.md", "pr_curves.png", "time_to_alert.png"):
        assert (out / name).is_file(), name
    for name in ("pr_curves.png", "time_to_alert.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.shared
def test_footage_figures_follow_the_labels(footage_run: tuple[int, Path, Path]) -> None:
    _, out, shared = footage_run
    report = json.loads((out / "report.json").read_text())
    labels = json.loads((shared / "clips" / f"{CLIP}.labels.json").read_text())
    n_frames = len(labels["frames"])
    clip = report["clips"][0]
    # analysis_fps equals the clip's 5 fps: every frame goes through, each onto its own label index
    assert clip["analysed_frames"] == n_frames
    assert clip["label_coverage"] == 1.0
    assert report["boxes"]["n_images"] == n_frames
    for name in ("fire", "smoke"):
        expected = sum(1 for f in labels["frames"] for b in f["boxes"] if b["cls"] == name)
        assert report["boxes"]["classes"][name]["n_labels"] == expected
    # every `new` message is one alert, true or false
    n_alerts = sum(c["n_alerts"] for c in report["alerts"]["classes"].values())
    assert n_alerts == clip["messages"].get("new", 0) == clip["alerts_new"]
    for c in report["alerts"]["classes"].values():
        assert c["n_true_alerts"] + c["n_false_alerts"] == c["n_alerts"]
        assert c["n_caught"] <= c["n_events"]
    assert report["alerts"]["hours"] == pytest.approx(n_frames / 5.0 / 3600.0)
    t = report["throughput"]
    assert t["frames"] == n_frames
    shares = [t["decode_share"], t["inference_share"], t["analysis_share"], t["rest_share"]]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    assert t["inference_share"] > 0


def md_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Markdown tables by the heading above them: list of {column: cell}."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading = ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            heading = line[3:].strip()
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("| "):
                    break
                rows.append(dict(zip(header, [c.strip() for c in row.strip("|").split("|")], strict=True)))
            tables[heading] = rows
    return tables


def close(cell: str, value: float | int | None) -> bool:
    parsed = parse_fmt(cell)
    if value is None or parsed is None:
        return parsed is None and value is None
    return abs(parsed - float(value)) <= 0.0005 + 1e-12


@pytest.mark.shared
def test_markdown_numbers_match_json(footage_run: tuple[int, Path, Path]) -> None:
    _, out, _ = footage_run
    report = json.loads((out / "report.json").read_text())
    tables = md_tables((out / "report.md").read_text())
    box_rows = {r["class"]: r for r in tables["Box metrics"]}
    assert box_rows, "no box table"
    for name, row in box_rows.items():
        c = report["boxes"]["classes"][name]
        for col, key in (("AP50", "ap50"), ("AP50-95", "ap50_95"), ("precision", "precision"),
                         ("recall", "recall"), ("TP", "tp"), ("FP", "fp"), ("labels", "n_labels")):
            assert close(row[col], c[key]), (name, col, row[col], c[key])
    alert_rows = {r["class"]: r for r in tables["Alert metrics"]}
    for name, row in alert_rows.items():
        c = report["alerts"]["classes"][name]
        assert close(row["events"], c["n_events"]) and close(row["caught"], c["n_caught"])
        assert close(row["event recall"], c["event_recall"])
        assert close(row["time to alert mean s"], c["time_to_alert_s"]["mean"])
        assert close(row["false alerts"], c["n_false_alerts"])
        assert close(row["false / camera-hour"], c["false_alerts_per_camera_hour"])
    (t_row,) = tables["Throughput"]
    assert close(t_row["frames/s"], report["throughput"]["frames_per_s"])
    assert close(t_row["inference share"], report["throughput"]["inference_share"])
    mean = re.search(r"mAP50 ([0-9.–]+), mAP50-95 ([0-9.–]+)", (out / "report.md").read_text())
    assert mean is not None
    assert close(mean.group(1), report["boxes"]["map50"]) and close(mean.group(2), report["boxes"]["map50_95"])


@pytest.mark.shared
def test_operating_point_equals_the_daemons_detector(shared_data: Path, tmp_path: Path) -> None:
    """Floor + per-class filter (evaluation) returns exactly what the detector at the thresholds returns."""
    import av

    from pipeline.detect.onnx_detector import OnnxDetector
    from pipeline.eval.hookup import make_detector

    thresholds = {"default": 0.3, "smoke": 0.2}
    cfg = load_config(write_config(tmp_path, shared_data, score_threshold=thresholds))
    if not STARTER.is_file():  # the COCO model sees little in fire clips: map all its classes onto two of ours
        names = OnnxDetector(cfg.detector).names
        cmap = {n: ("smoke" if i % 2 else "truck") for i, n in names.items()}
        cfg = load_config(write_config(tmp_path, shared_data, score_threshold=thresholds, class_map=cmap))
    daemon_detector = OnnxDetector(cfg.detector)
    eval_detector = make_detector(cfg.detector)
    with av.open(str(shared_data / "clips" / "pexels-alan-w-8365989.mp4")) as container:
        frames = [np.asarray(f.to_ndarray(format="bgr24"), np.uint8)
                  for _, f in zip(range(6), container.decode(video=0), strict=False)]
    n_boxes = 0
    for image in frames:
        want = daemon_detector.detect([image])[0]
        floor = eval_detector.detect([image])[0]
        got = floor.at_or_above(cfg.detector.score_threshold.as_array())
        assert len(floor) >= len(got)
        order_w, order_g = np.lexsort(want.xyxy.T), np.lexsort(got.xyxy.T)
        np.testing.assert_allclose(got.xyxy[order_g], want.xyxy[order_w], atol=1e-3)
        np.testing.assert_array_equal(got.class_id[order_g], want.class_id[order_w])
        n_boxes += len(want)
    assert n_boxes > 0, "no detection at all: the comparison would prove nothing"


@pytest.mark.shared
def test_images_command(shared_data: Path, tmp_path: Path) -> None:
    images = sorted((shared_data / "fire8" / "images").glob("smoke5_*"))[:4]
    split = tmp_path / "split.txt"
    split.write_text("\n".join(str(p) for p in images) + "\n")
    model, cmap = model_and_map(shared_data)
    cmap_arg = ",".join(f"{k}={v}" for k, v in cmap.items())
    out = tmp_path / "out"
    rc = main(["eval", "images", "--model", str(model), "--data", str(split), "--names", "fire,smoke",
               "--class-map", cmap_arg, "--out", str(out), "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["boxes"]["n_images"] == 4
    n_smoke = sum(
        1 for p in images
        for line in (shared_data / "fire8" / "labels" / f"{p.stem}.txt").read_text().splitlines()
        if line.split() and line.split()[0] == "1"
    )
    assert report["boxes"]["classes"]["smoke"]["n_labels"] == n_smoke
    assert (out / "pr_curves.png").is_file()


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("no_footage", ["--footage", "{tmp}/nothing", "--labels", "{tmp}"], "--footage: expected a video file"),
        ("unknown_clip", ["--footage", "{clips}", "--labels", "{clips}", "--clips", "nope"],
         "--clips: expected names among"),
        ("no_labels", ["--footage", "{clips}/smoke5.mp4", "--labels", "{tmp}/none"], "expected a labels file"),
    ],
)
@pytest.mark.shared
def test_user_errors_exit_2_one_line(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, args: list[str],
    expected: str,
) -> None:
    config = write_config(tmp_path, shared_data)
    args = [a.format(tmp=tmp_path, clips=shared_data / "clips") for a in args]
    rc = main(["eval", "--config", str(config), *args, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert expected in err


def test_missing_model_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"id": "c", "source": "x.mp4", "lat": 1.0, "lon": 2.0}],
        "detector": {"model_path": str(tmp_path / "missing.onnx")},
    }))
    rc = main(["eval", "--config", str(config), "--footage", str(tmp_path), "--labels", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "detector.model_path: expected an existing ONNX model file" in err
    assert len(err.splitlines()) == 1


@pytest.mark.shared
def test_yolo_folder_labels_plan_like_json(shared_data: Path, tmp_path: Path) -> None:
    """Per-frame YOLO files written from a clip's JSON labels give the same boxes for every frame."""
    from pipeline.eval.footage import plan_clips

    data = json.loads((shared_data / "clips" / f"{CLIP}.labels.json").read_text())
    folder = tmp_path / "labels" / CLIP
    folder.mkdir(parents=True)
    (folder / "classes.txt").write_text("\n".join(data["classes"]) + "\n")
    for frame in data["frames"]:
        lines = [f"{data['classes'].index(b['cls'])} " + " ".join(f"{v:.9f}" for v in b["cxcywh_norm"])
                 for b in frame["boxes"]]
        (folder / f"{CLIP}_{frame['index']:06d}.txt").write_text("\n".join(lines) + "\n")
    config = load_config(write_config(tmp_path, shared_data))
    (from_yolo,) = plan_clips(config, shared_data / "clips", tmp_path / "labels", only=[CLIP])
    (from_json,) = plan_clips(config, shared_data / "clips", shared_data / "clips", only=[CLIP])
    assert from_yolo.fps == from_json.fps == 5.0  # YOLO labels carry no rate: the video's is used
    assert from_yolo.n_frames == from_json.n_frames == len(data["frames"])
    assert from_yolo.camera.id == CLIP and from_yolo.camera.realtime is False
    for index in range(from_json.n_frames):
        a, b = from_yolo.labels.at(index), from_json.labels.at(index)
        np.testing.assert_allclose(a.cxcywh_norm, b.cxcywh_norm, atol=1e-8)
        np.testing.assert_array_equal(a.class_id, b.class_id)


def encode_clip(path: Path, frames: list[np.ndarray], fps: int = 5) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.shared
def test_alert_path_on_a_made_clip(shared_data: Path, tmp_path: Path) -> None:
    """A truck photo shown for 1.2 s inside a closed-mine zone, on a clip made here: the COCO model sees the
    truck, the Analyzer confirms it and raises one alert; the metrics must call it a caught event, with
    the time to alert that the confirmation takes, and no false alert. The same alert against labels that
    put the truck elsewhere is a false alert and a missed event."""
    import cv2

    # a truck at (332, 264)-(503, 357) in this photo
    photo = np.asarray(cv2.imread(str(shared_data / "excavator" / "images" / "102.jpg")), np.uint8)
    blank = np.full_like(photo, 114)
    frames = [blank] * 3 + [photo] * 6 + [blank] * 3
    clips = tmp_path / "clips"
    clips.mkdir()
    encode_clip(clips / "truck.mp4", frames)
    h, w = photo.shape[:2]
    box = [(332 + 503) / 2 / w, (264 + 357) / 2 / h, (503 - 332) / w, (357 - 264) / h]
    elsewhere = [0.1, 0.1, 0.1, 0.1]

    def labels(cxcywh: list[float], latlon: tuple[float, float] | None = None) -> dict[str, Any]:
        where = {"lat": latlon[0], "lon": latlon[1]} if latlon else {}
        return {"fps": 5, "frames": [{"index": i, "boxes": [{"cls": "truck", "cxcywh_norm": cxcywh, **where}]
                                      if 3 <= i < 9 else []} for i in range(12)]}

    (tmp_path / "right").mkdir()
    (tmp_path / "right" / "truck.labels.json").write_text(json.dumps(labels(box)))
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "truck.labels.json").write_text(json.dumps(labels(elsewhere)))
    zones = tmp_path / "zones"
    zones.mkdir()
    ring = [[111.6, 38.65], [111.75, 38.65], [111.75, 38.75], [111.6, 38.75], [111.6, 38.65]]
    (zones / "mine.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"id": "mine-1", "name": "test mine", "kind": "closed_mine", "classes": ["truck"],
                       "min_dwell_s": 0}}]}))
    config = write_config(tmp_path, shared_data, class_map={"truck": "truck"}, score_threshold={"default": 0.5},
                          model_path=str(shared_data / "models" / "yolov8n_coco_640.onnx"))
    data = yaml.safe_load(config.read_text())
    data["zones"]["dir"] = str(zones)
    config.write_text(yaml.safe_dump(data))
    cfg = load_config(config)
    hits = cfg.alerts.confirm_hits
    # the true position: where the geo code puts the labelled box's bottom centre (the truck on the ground)
    from pipeline.geo.camera import CameraModel
    from pipeline.types import Pose

    cam = cfg.cameras[0]
    fix = CameraModel.from_config(cam).locate(Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg), (w, h),
                                              np.array([[(332 + 503) / 2, 357.0]]))[0]
    assert fix is not None
    (tmp_path / "right" / "truck.labels.json").write_text(json.dumps(labels(box, (fix.lat, fix.lon))))

    rc = main(["eval", "--config", str(config), "--footage", str(clips), "--labels", str(tmp_path / "right"),
               "--out", str(tmp_path / "out-right"), "--no-progress"])
    assert rc == 0
    right = json.loads((tmp_path / "out-right" / "report.json").read_text())
    truck = right["alerts"]["classes"]["truck"]
    assert right["clips"][0]["alerts_new"] == 1, right["clips"]
    assert (truck["n_events"], truck["n_caught"], truck["n_false_alerts"]) == (1, 1, 0)
    # confirmed on the `confirm_hits`-th frame with the truck: (hits − 1) frames after the first, at 5 fps
    assert truck["time_to_alert_s"]["values"] == [pytest.approx((hits - 1) / 5.0)]
    assert right["boxes"]["classes"]["truck"]["ap50"] > 0.9
    # the alert's fixes come from the detected (not the labelled) box: a few pixels off at ~60 m range
    location = truck["location_error_m"]
    assert location["n"] >= 1
    assert 0.0 <= location["median"] < 10.0, location

    rc = main(["eval", "--config", str(config), "--footage", str(clips), "--labels", str(tmp_path / "wrong"),
               "--out", str(tmp_path / "out-wrong"), "--no-progress"])
    assert rc == 0
    wrong = json.loads((tmp_path / "out-wrong" / "report.json").read_text())["alerts"]["classes"]["truck"]
    assert (wrong["n_events"], wrong["n_caught"], wrong["n_false_alerts"]) == (1, 0, 1)
    assert wrong["false_alerts_per_camera_hour"] == pytest.approx(1 / (12 / 5 / 3600))
