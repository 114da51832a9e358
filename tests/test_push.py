"""Pushes against a real local HTTP server that answers as the WeCom / DingTalk / Feishu robots and a JSON
webhook do: formats, signatures, refusals, an endpoint down for five (virtual) minutes and a restart in
between, exactly one delivery per recipient, routing by township and zone kind, escalation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from pipeline.cli import main
from pipeline.push.config import load_push_config
from pipeline.push.formats import CaseNotice
from pipeline.push.pusher import Pusher
from tests.conftest import free_port

SECRET = "SEC-test-signing-secret"


@dataclass
class Robot:
    """A local endpoint; ``received[path]`` keeps each push once (by its id), ``raw`` every request."""

    port: int
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse_next: int = 0  # answer errcode 45009 (rate limit) this many times
    server: ThreadingHTTPServer | None = None

    def start(self) -> Robot:
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = urlsplit(self.path)
                robot.raw.append((url.path, body))
                fmt = url.path.strip("/").split("/")[0]
                ok = _signature_ok(fmt, url.query, body)
                if robot.refuse_next > 0 or not ok:
                    robot.refuse_next -= 1
                    answer: dict[str, Any] = ({"code": 19021, "msg": "sign match fail"} if fmt == "feishu"
                                              else {"errcode": 45009, "errmsg": "api freq out of limit"})
                    status = 200
                else:
                    pid = self.headers["Idempotency-Key"]
                    assert pid and pid in json.dumps(body, ensure_ascii=False)
                    robot.received.setdefault(f"{url.path}|{pid}", body)
                    answer = {"code": 0, "msg": "success"} if fmt == "feishu" else {"errcode": 0, "errmsg": "ok"}
                    status = 200
                data = json.dumps(answer).encode()
                self.send_response(status if fmt != "json" or ok else 500)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def deliveries(self, path: str) -> list[dict[str, Any]]:
        return [b for k, b in self.received.items() if k.startswith(path + "|")]


def _signature_ok(fmt: str, query: str, body: dict[str, Any]) -> bool:
    if fmt == "dingtalk-signed":
        q = parse_qs(query)
        ts = q["timestamp"][0]
        want = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest())
        return q["sign"][0] == want.decode() and q["access_token"][0] == "tok"
    if fmt == "feishu":
        ts = body.get("timestamp", "")
        want = base64.b64encode(hmac.new(f"{ts}\n{SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
        return body.get("sign") == want
    return True


@pytest.fixture
def robot() -> Iterator[Robot]:
    r = Robot(free_port()).start()
    yield r
    r.stop()


def _config(tmp: Path, port: int, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Path:
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MW_WECOM_URL", f"{base}/wecom/send?key=wecom-key-123")
    monkeypatch.setenv("MW_DING_SECRET", SECRET)
    (tmp / "feishu.url").write_text(f"{base}/feishu/hook/abc\n")
    data: dict[str, Any] = {
        "targets": [
            {"id": "cg-wecom", "format": "wecom", "url_env": "MW_WECOM_URL"},
            {"id": "county-ding", "format": "dingtalk", "url": f"{base}/dingtalk-signed/robot/send?access_token=tok",
             "secret_env": "MW_DING_SECRET"},
            {"id": "city-feishu", "format": "feishu", "url_file": "feishu.url", "secret_env": "MW_DING_SECRET"},
            {"id": "sms", "format": "json", "url": f"{base}/json/sms"},
            {"id": "other-town", "format": "wecom", "url": f"{base}/wecom/other"},
        ],
        "routes": [
            {"townships": ["城关镇"], "zone_kinds": ["closed_mine", "illegal_site"],
             "levels": [{"targets": ["cg-wecom", "sms"]}, {"after_minutes": 30, "targets": ["county-ding"]},
                        {"after_minutes": 60, "targets": ["city-feishu"]}]},
            {"townships": ["河口镇"], "levels": [{"targets": ["other-town"]}]},
        ],
        "outbox_path": "push.sqlite", "retry_min_s": 5, "retry_max_s": 60,
        "console_url": "https://console.example/", **extra,
    }
    path = tmp / "push.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _notice(case_id: str = "kelan-t1-20261129T090102Z-3fa2c1", township: str = "城关镇",
            zone_kind: str = "closed_mine") -> CaseNotice:
    return CaseNotice(case_id=case_id, event="new", level=0, title="关闭矿区发现挖掘机，夜间用电异常",
                      t="2026-11-29T17:01:02+08:00", priority=90, township=township, zone_id="z-closed-1",
                      zone_name="关闭矿区 1", zone_kind=zone_kind, responsible_name="王工",
                      responsible_phone="13800000000", lat=38.7123, lon=111.6234,
                      snapshot_url="https://console.example/api/alerts/a1/snapshot",
                      case_url="https://console.example/#a1",
                      clues=["摄像头 t1: excavator 0.87", "电表 M7: 夜间用电 612 kWh"])


class Clock:
    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _pusher(cfg_path: Path, clock: Clock) -> Pusher:
    return Pusher(load_push_config(cfg_path), cfg_path.parent, clock=clock)


def test_formats_carry_snapshot_and_map_and_are_signed(tmp_path: Path, robot: Robot,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    p = _pusher(_config(tmp_path, robot.port, monkeypatch), clock)
    assert p.submit(_notice()) == 2
    assert p.step() == (2, 0)
    clock.t += 31 * 60
    assert p.step() == (1, 0)  # level 1: DingTalk, signed
    clock.t += 61 * 60
    assert p.step() == (1, 0)  # level 2: Feishu, signed
    p.close()
    wecom = robot.deliveries("/wecom/send")[0]["markdown"]["content"]
    assert "关闭矿区 1" in wecom and "https://console.example/api/alerts/a1/snapshot" in wecom
    assert "uri.amap.com/marker?position=111.623400,38.712300&coordinate=wgs84" in wecom
    ding = robot.deliveries("/dingtalk-signed/robot/send")[0]
    assert ding["msgtype"] == "markdown" and ding["at"]["atMobiles"] == ["13800000000"]
    assert "案件升级" in ding["markdown"]["text"] and "第 1 级" in ding["markdown"]["text"]
    feishu = robot.deliveries("/feishu/hook/abc")[0]
    assert feishu["msg_type"] == "post"
    links = [e["href"] for row in feishu["content"]["post"]["zh_cn"]["content"] for e in row if e["tag"] == "a"]
    assert any("amap" in x for x in links) and "https://console.example/#a1" in links
    sms = robot.deliveries("/json/sms")[0]
    assert sms["case"]["case_id"] == _notice().case_id and sms["id"].startswith("p-") and sms["level"] == 0


def test_endpoint_down_five_minutes_and_a_restart_then_exactly_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    cfg = _config(tmp_path, port, monkeypatch)
    clock = Clock()
    p = _pusher(cfg, clock)
    assert p.submit(_notice()) == 2
    attempts = 0
    for _ in range(60):  # five minutes of a dead endpoint, in 5 s virtual steps: connection refused each time
        sent, failed = p.step()
        assert sent == 0
        attempts += failed
        clock.t += 5
    assert 6 <= attempts <= 30  # backed off: 5, 10, 20, 40, 60, 60 … seconds
    p.close()  # the process stops while the endpoint is still down
    robot = Robot(port).start()
    try:
        p = _pusher(cfg, clock)  # restart: the outbox still holds both pushes
        assert p.submit(_notice()) == 0  # re-reading the register queues nothing twice
        clock.t += 61
        assert p.step() == (2, 0)
        clock.t += 61
        assert p.step() == (0, 0)
        assert p.submit(_notice()) == 0  # delivered ids are remembered
        assert p.ack(_notice().case_id, "alice")
        clock.t += 3 * 3600
        assert p.step() == (0, 0)  # acknowledged: no escalation
        p.close()
    finally:
        robot.stop()
    assert len(robot.raw) == 2 and len(robot.received) == 2  # once per recipient, no duplicate on the wire
    assert "wecom-key-123" not in caplog.text and SECRET not in caplog.text


def test_refusals_are_retried_and_routing_by_township(tmp_path: Path, robot: Robot,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    p = _pusher(_config(tmp_path, robot.port, monkeypatch), clock)
    robot.refuse_next = 1  # the robot answers HTTP 200 with errcode 45009: not delivered
    assert p.submit(_notice("c-other", township="河口镇")) == 1
    assert p.submit(_notice("c-licensed", zone_kind="licensed_area")) == 0  # route 0 wants closed/illegal
    assert p.step() == (0, 1)
    status = p.outbox.status()
    assert status["waiting"]["other-town"]["pushes"] == 1 and "45009" in status["last_errors"][0]["error"]
    clock.t += 10
    assert p.step() == (1, 0)
    assert [k.split("|")[0] for k in robot.received] == ["/wecom/other"]
    p.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [({"routes": [{"levels": [{"targets": ["nobody"]}]}]}, "not among the targets"),
     ({"retry_min_s": 0}, "retry_min_s"),
     ({"bogus": 1}, "unknown field"),
     ({"targets": [{"id": "x", "format": "wecom"}]}, "exactly one of url"),
     ({"targets": [{"id": "x", "format": "slack", "url": "http://a/"}]}, "format")],
)
def test_config_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str) -> None:
    path = _config(tmp_path, 1, monkeypatch)
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(["push", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "wecom-key-123" not in err[0]


def test_cli_check_and_test_push(tmp_path: Path, robot: Robot, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, robot.port, monkeypatch)
    monkeypatch.delenv("MW_WECOM_URL")
    assert main(["push", "check", "--config", str(cfg)]) == 2
    assert "MW_WECOM_URL set" in capsys.readouterr().err
    monkeypatch.setenv("MW_WECOM_URL", f"http://127.0.0.1:{robot.port}/wecom/send?key=wecom-key-123")
    assert main(["push", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "county-ding: dingtalk (signed)" in out and "wecom-key-123" not in out
    assert main(["push", "test", "--config", str(cfg), "--target", "sms"]) == 0
    assert len(robot.deliveries("/json/sms")) == 1
