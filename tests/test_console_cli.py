"""``minewatch console`` command line: operators (password never from argv), check, one-line errors."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.console import auth
from pipeline.console.store import Store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "console.yaml"
    path.write_text(
        "database_url: sqlite:///reg.sqlite\n"
        "mqtt: {host: 127.0.0.1, port: 1, box_ids: [b1, b2], share_group: ops}\n"
        "boxes: [{id: b1, towers: [{id: c1, lat: 38.7, lon: 111.6}]}]\n"
    )
    return path


def test_adduser_from_stdin_then_users_and_login(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert main(["console", "adduser", "--config", str(config), "alice", "--name", "张三"]) == 0
    assert main(["console", "users", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "operator alice added" in out and "张三" in out and "s3cret" not in out
    store = Store(f"sqlite:///{config.parent / 'reg.sqlite'}")  # relative to the config file
    assert auth.verify(store, "alice", "s3cret-password") is not None


def test_adduser_password_file_and_env_then_passwd(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("from-a-file-1\n")
    url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert main(["console", "adduser", "--database-url", url, "bob", "--password-file", str(pw)]) == 0
    monkeypatch.setenv("NEW_PW", "from-the-env-2")
    assert main(["console", "passwd", "--database-url", url, "bob", "--password-env", "NEW_PW"]) == 0
    store = Store(url)
    assert auth.verify(store, "bob", "from-a-file-1") is None
    assert auth.verify(store, "bob", "from-the-env-2") is not None


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["adduser", "CONFIG", "alice"], "short\n", "at least 8 characters"),
        (["adduser", "CONFIG", "bad name"], "long-enough-pw\n", "username"),
        (["adduser", "CONFIG", "alice"], "", "a password line"),
        (["adduser", "CONFIG", "alice", "--password-env", "MW_UNSET_VAR"], "", "MW_UNSET_VAR set"),
        (["adduser", "CONFIG", "alice", "--password-file", "/nonexistent/pw"], "", "a readable file"),
        (["passwd", "CONFIG", "nobody"], "long-enough-pw\n", "an existing operator"),
    ],
)
def test_operator_command_errors_are_one_line(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.delenv("MW_UNSET_VAR", raising=False)
    args = ["console"] + [a if a != "CONFIG" else "--config" for a in argv]
    args.insert(args.index("--config") + 1, str(config))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_taken_user_name(config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-pw\n"))
        code = main(["console", "adduser", "--config", str(config), "alice"])
    assert code == 2 and "exists already" in capsys.readouterr().err


def test_password_is_never_an_argument(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["console", "adduser", "--config", str(config), "alice", "--password", "in-argv-123"])
    assert info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_check_prints_the_subscriptions(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "$share/ops/minewatch/b1/events  (shared)" in out and "minewatch/b2/cameras/+/status" in out
    assert "towers: 1" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: {port: 70000}\n", "web.port: expected"),
        ("boxes: [{id: b1, zones: [missing.geojson]}]\n", "an existing GeoJSON file or folder"),
        ("mqtt: {password_env: A, password_file: b}\n", "not both"),
    ],
)
def test_bad_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    path = tmp_path / "console.yaml"
    path.write_text(text)
    assert main(["console", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_busy_web_port_is_a_user_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config.write_text(config.read_text() + f"web: {{port: {port}}}\n")
        assert main(["console", "--config", str(config)]) == 2
    assert "web.port: expected a free port" in capsys.readouterr().err
