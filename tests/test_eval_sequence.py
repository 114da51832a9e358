"""`minewatch eval sequence`: frames with capture times through the daemon's chain, real gaps, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.eval.sequence import load_sequence, score_alerts
from pipeline.smoke.synthetic import PlumeSpec, landscape, with_plume, write_sequence
from tests.conftest import ROOT, SHARED_DATA

WH = (640, 360)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "cameras.yaml"
    cfg.write_text(
        "cameras:\n  - id: tower\n    source: rtsp://127.0.0.1/none\n    lat: 38.7\n    lon: 111.6\n"
        "    ground_elevation_m: 1450\n    mast_height_m: 25\n    pan_deg: 90\n    tilt_deg: -2\n    hfov_deg: 100\n"
        f"detector:\n  model_path: {ROOT / 'models' / 'minewatch-starter.onnx'}\n"
        f"mqtt:\n  enabled: false\nzones:\n  dir: {tmp_path / 'no-zones'}\n{extra}",
        encoding="utf-8")
    return cfg


def run(cfg: Path, frames: Path, out: Path) -> dict:
    assert main(["eval", "sequence", "--config", str(cfg), "--frames", str(frames), "--out", str(out),
                 "--no-progress"]) == 0
    assert (out / "report.md").is_file() and (out / "strip.jpg").is_file()
    return json.loads((out / "report.json").read_text())


def synthetic(folder: Path, step_s: int = 60, ignition: float | None = 0.0, seed: int = 5) -> Path:
    frames = [(float(t), landscape(WH, t, seed=seed)) for t in range(-1200, 601, step_s)]
    if ignition is not None:
        frames = with_plume(frames, PlumeSpec((0.55, 0.5)), ignition)
    return write_sequence(folder, frames, 0.0)


def test_synthetic_plume_alerts_with_the_right_delay_and_no_false_alert(tmp_path: Path) -> None:
    report = run(write_config(tmp_path), synthetic(tmp_path / "seq"), tmp_path / "out")
    assert report["false_alerts_before_ignition"] == 0
    assert report["minutes_to_first_alert"] is not None and 1.0 <= report["minutes_to_first_alert"] <= 5.0
    first = next(a for a in report["alerts"] if a["alert_id"] == report["first_alert_id"])
    assert first["class"] == "smoke" and first["frame"] == f"{int(first['t_s']):+06d}.jpg"
    # the box's bottom is the plume's base (the ground point), near the fire's row
    assert abs(first["xyxy"][3] - 0.5 * WH[1]) < 0.06 * WH[1]
    assert "minutes to first fire/smoke alert" in (tmp_path / "out" / "report.md").read_text()


def test_pure_pre_ignition_sequence_raises_nothing(tmp_path: Path) -> None:
    """Drifting clouds, exposure jumps and sensor noise for 30 minutes: no alert."""
    report = run(write_config(tmp_path), synthetic(tmp_path / "seq", ignition=None), tmp_path / "out")
    assert report["alerts"] == []
    assert report["false_alerts_before_ignition"] == 0 and report["minutes_to_first_alert"] is None


def test_real_gaps_not_frame_counts(tmp_path: Path) -> None:
    """The same pictures a second apart (times.csv) never confirm: the plume must persist for real time."""
    seq = synthetic(tmp_path / "seq")
    names = sorted((p.name for p in seq.glob("*.jpg")), key=lambda n: float(n[:-4]))
    fast = tmp_path / "fast"
    fast.mkdir()
    lines = ["file,t_s"]
    for i, name in enumerate(names):
        (fast / name).write_bytes((seq / name).read_bytes())
        lines.append(f"{name},{i - 20}")  # 1 s apart, ignition at the same frame (t = 0)
    (fast / "times.csv").write_text("\n".join(lines) + "\n")
    (fast / "sequence.json").write_text('{"ignition_offset_s": 0}')
    report = run(write_config(tmp_path), fast, tmp_path / "out")
    assert report["median_gap_s"] == 1.0
    assert report["alerts"] == []


@pytest.mark.parametrize("files, expected", [
    ({"a.jpg": b"x"}, "file name: expected the capture time in seconds"),
    ({"times.csv": "file,when\n"}, "header: expected columns file,t_s"),
    ({"times.csv": "file,t_s\nmissing.jpg,3\n"}, "file: expected an image file in the folder"),
    ({"times.csv": "file,t_s\n"}, "--frames: expected image files"),
    ({"+00060.jpg": b"x", "sequence.json": "{\"ignition_offset_s\": \"soon\"}"},
     "ignition_offset_s: expected a time in seconds or null"),
    ({"+00060.jpg": b"x", "sequence.json": "[1]"}, "expected a JSON object"),
])
def test_folder_mistakes_are_one_line(tmp_path: Path, files: dict[str, bytes | str], expected: str) -> None:
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    with pytest.raises(UserError) as err:
        load_sequence(tmp_path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_folder_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "sequence", "--config", str(write_config(tmp_path)), "--frames",
                 str(tmp_path / "nothing")]) == 2
    assert "expected a folder of frames" in capsys.readouterr().err


def test_score_alerts() -> None:
    alerts = [{"alert_id": "a", "class": "truck", "t_s": -600.0}, {"alert_id": "b", "class": "truck", "t_s": 60.0},
              {"alert_id": "c", "class": "smoke", "t_s": 240.0}]
    s = score_alerts(alerts, 0.0)
    assert s["false_alerts_before_ignition"] == 1 and s["minutes_to_first_alert"] == 4.0
    assert s["first_alert_id"] == "c"
    assert score_alerts(alerts, None)["minutes_to_first_alert"] is None


RMW = SHARED_DATA / "tower_smoke" / "hpwren-rm-w-20180728"


@pytest.mark.skipif(not RMW.is_dir(), reason=f"shared data absent: {RMW}")
def test_real_hpwren_sequence(tmp_path: Path) -> None:
    """The real rm-w fire: alerted within 5 minutes, nothing in the 40 minutes before it."""
    report = run(write_config(tmp_path), RMW, tmp_path / "out")
    assert report["false_alerts_before_ignition"] == 0
    assert report["minutes_to_first_alert"] is not None and report["minutes_to_first_alert"] <= 5.0
