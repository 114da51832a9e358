"""Config validation: a table of good and bad cameras.yaml files, and the CLI's one-line errors."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

GOOD_CAMERA = """
cameras:
  - id: t1
    source: clip.mp4
    lat: 38.7
    lon: 111.6
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD_CAMERA))
    cam = config.cameras[0]
    assert cam.source == str(tmp_path / "clip.mp4")
    assert cam.hfov_deg == 60.0 and cam.analysis_fps == 2.0
    assert config.detector.model_path == tmp_path / "models/minewatch-starter.onnx"
    assert config.mqtt.qos == 1
    assert config.alerts.outbox_path == tmp_path / "var/outbox.sqlite"


def test_rtsp_source_is_kept_and_redacted(tmp_path: Path) -> None:
    text = GOOD_CAMERA.replace("clip.mp4", "rtsp://admin:s3cret@10.0.0.5:554/Streaming/101")
    cam = load_config(write(tmp_path, text)).cameras[0]
    assert cam.is_rtsp
    assert cam.source.endswith("s3cret@10.0.0.5:554/Streaming/101")
    assert cam.source_redacted == "rtsp://admin:***@10.0.0.5:554/Streaming/101"


BAD = [
    ("lat: 38.7", "lat: 95", "cameras[0] (id=t1).lat: expected less than or equal to 90, found 95"),
    ("lon: 111.6", "lon: 111.6\n    zoom: 3", "cameras[0] (id=t1).zoom: expected only known fields"),
    ("    lat: 38.7\n", "", "cameras[0] (id=t1).lat: expected this required field, found nothing"),
    ("id: t1", "id: 'bad id!'", "cameras[0] (id=bad id!).id: expected String should match pattern"),
    ("lon: 111.6", "lon: 111.6\n    hfov_deg: 0", "hfov_deg: expected greater than 0.5, found 0"),
    ("lon: 111.6", "lon: 111.6\nmqtt:\n  password: hunter2", "mqtt.password: expected only known fields"),
    ("lon: 111.6", "lon: 111.6\nmqtt:\n  port: 70000", "mqtt.port: expected less than or equal to 65535"),
    ("lon: 111.6", "lon: 111.6\nalerts:\n  confirm_hits: 6\n  confirm_window: 5",
     "alerts: expected confirm_hits ≤ confirm_window, found confirm_hits 6, confirm_window 5"),
    ("lon: 111.6", "lon: 111.6\n    mast_hieght_m: 30",
     "cameras[0] (id=t1).mast_hieght_m: expected only known fields (did you mean 'mast_height_m'?), found unknown"),
    ("lon: 111.6", "lon: 111.6\nmqtt:\n  hots: 10.0.0.2",
     "mqtt.hots: expected only known fields (did you mean 'host'?)"),
    ("lon: 111.6", "lon: 111.6\nalerts:\n  confirm_windw: 5", "did you mean 'confirm_window'?"),
    ("lon: 111.6", "lon: 111.6\ndetector:\n  providers: [OpenVINOExecutionProvider]",
     "detector.providers[0]: expected 'TensorrtExecutionProvider'"),
    ("cameras:", "cameras: []\nx:", "cameras: expected List should have at least 1 item"),
    ("lon: 111.6", "lon: 111.6\n  - id: t1\n    source: b.mp4\n    lat: 1\n    lon: 1",
     "cameras: expected duplicate camera id 't1'"),
    ("    lat: 38.7", "   lat: 38.7", "line 5, column 4: expected valid YAML"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD, ids=[m.split(":")[0] for _, _, m in BAD])
def test_bad_config_gives_one_line_naming_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write(tmp_path, GOOD_CAMERA.replace(old, new, 1))
    with pytest.raises(UserError) as info:
        load_config(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    assert message in text


def test_password_comes_from_env_or_file_never_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD_CAMERA + "mqtt:\n  username: u\n  password_env: MW_TEST_PW\n")
    mqtt = load_config(path).mqtt
    with pytest.raises(UserError, match="MW_TEST_PW"):
        mqtt.password()
    monkeypatch.setenv("MW_TEST_PW", "pw-from-env")
    assert mqtt.password() == "pw-from-env"
    (tmp_path / "pw.txt").write_text("pw-from-file\n")
    path = write(tmp_path, GOOD_CAMERA + "mqtt:\n  password_file: pw.txt\n")
    assert load_config(path).mqtt.password() == "pw-from-file"


@pytest.fixture(name="good")
def good_fixture(tmp_path: Path) -> Path:
    """A config whose files all exist: the starter model, a short clip, an empty zones folder."""
    from tests.rtsp_fixture import make_clip

    make_clip(tmp_path / "clip.mp4", seconds=1.0)
    (tmp_path / "zones").mkdir()
    return write(tmp_path, GOOD_CAMERA + f"detector:\n  model_path: {ROOT / 'models' / 'minewatch-starter.onnx'}\n")


@pytest.mark.parametrize(
    ("change", "code", "needle"),
    [
        (("", ""), 0, "1 camera(s)"),
        (("lat: 38.7", "lat: north"), 2, "lat: expected a valid number"),
    ],
)
def test_config_check_cli(good: Path, change: tuple[str, str], code: int, needle: str) -> None:
    good.write_text(good.read_text().replace(*change) if change[0] else good.read_text())
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "check", str(good)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == code, proc.stderr
    out = proc.stdout + proc.stderr
    assert needle in out
    assert "Traceback" not in out
    if code:
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "needle"), [
    (": : :", "expected valid YAML"),
    ("- just a list", "expected a mapping with a `cameras:` list"),
])
def test_config_check_unreadable(tmp_path: Path, text: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    assert main(["config", "check", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def _break(config: Path, what: str) -> str:
    """Break one file the config names; returns the text its one-line error must hold."""
    folder = config.parent
    text = config.read_text()
    if what == "model missing":
        config.write_text(text.replace("minewatch-starter.onnx", "missing.onnx"))
        return "detector.model_path: expected an existing ONNX model file"
    if what == "model is text":
        (folder / "model.onnx").write_text("# not a model\nhello\n")
        config.write_text(text.replace(str(ROOT / "models" / "minewatch-starter.onnx"), str(folder / "model.onnx")))
        return "detector.model_path: expected a valid ONNX model, found a text file ('# not a model'…), not an ONNX"
    if what == "source missing":
        (folder / "clip.mp4").unlink()
        return "cameras[0] (id=t1).source: expected an rtsp:// URL or an existing video file"
    if what == "source not a video":
        (folder / "clip.mp4").write_text("# README\n")
        return f"cameras[0] (id=t1).source: expected a video file, found {folder / 'clip.mp4'}"
    if what == "zone not JSON":
        (folder / "zones" / "bad.geojson").write_text("{")
        return "bad.geojson: line 1, column 2: expected valid JSON"
    if what == "reference image missing":
        config.write_text(text.replace("lon: 111.6\n", "lon: 111.6\n    view_reference_path: ref-missing.png\n"))
        return "view_reference_path: expected a readable reference image (JPEG/PNG), found no such file"
    raise AssertionError(what)


BREAKS = ["model missing", "model is text", "source missing", "source not a video", "zone not JSON",
          "reference image missing"]


@pytest.fixture(name="root_logging")
def root_logging_fixture() -> Iterator[None]:
    """`run` in this process sets up the root logger: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("what", BREAKS)
def test_config_check_finds_what_run_refuses(good: Path, what: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`config check` said OK for these, and `run` then refused them: now both refuse, with the same line."""
    from pipeline.cli import main

    needle = _break(good, what)
    for argv in (["config", "check", str(good)], ["run", "--config", str(good)]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.startswith("minewatch ")]
        assert len(lines) == 1 and needle in lines[0], (argv, captured.err)
        assert "Traceback" not in captured.err


def test_config_check_reports_every_problem_at_once(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    needles = [_break(good, what) for what in ("model is text", "source not a video", "zone not JSON")]
    assert main(["config", "check", str(good)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    for needle, line in zip(needles, lines, strict=True):
        assert needle in line


def test_config_check_missing_file(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "check", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "nope.yaml: expected an existing config file, found no such file" in proc.stderr


def test_shipped_sample_config_is_valid() -> None:
    config = load_config(ROOT / "cameras.yaml")
    assert config.cameras[0].id == "kelan-t1"


def _all_models() -> list[type]:
    import typing

    from pydantic import BaseModel

    from pipeline.config import Config

    seen: list[type] = []
    queue: list[type] = [Config]
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():  # type: ignore[attr-defined]
            stack = [info.annotation]
            while stack:
                ann = stack.pop()
                if isinstance(ann, type) and issubclass(ann, BaseModel):
                    queue.append(ann)
                stack.extend(typing.get_args(ann))
    return seen


def test_every_config_field_is_described_and_forbids_extras() -> None:
    undocumented = []
    for model in _all_models():
        assert model.model_config.get("extra") == "forbid", model.__name__  # type: ignore[attr-defined]
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            if not (info.description or "").strip():
                undocumented.append(f"{model.__name__}.{name}")
    assert not undocumented, undocumented


def test_config_reference_doc_is_up_to_date() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_doc.py"), "--check"], cwd=ROOT)
    assert proc.returncode == 0, "docs/CONFIG.md is stale: run .venv/bin/python scripts/gen_config_doc.py"
