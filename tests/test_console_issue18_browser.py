"""Issue 18 end to end: a real `minewatch console` process with a real Mosquitto and a push endpoint on
127.0.0.1; a citizen's report through the public form in Chromium (receipt code), the intake and
statistics pages, a power anomaly posted to the API and an excavator alert published on the broker in the
same zone → one case at priority 100 → pushed to the endpoint; the report merged in: one case, three kinds
of clue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, free_port, wait_port
from test_console_browser import CHROME_ARGS, CHROMIUM
from test_console_store import make_event
from test_push import Robot

ROOT = Path(__file__).resolve().parents[1]


def test_public_report_pages_and_a_pushed_top_case(broker: Broker, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `bash scripts/setup.sh --dev` (apt-get install chromium)")
    robot = Robot(free_port()).start()
    port = free_port()
    (tmp_path / "push.yaml").write_text(json.dumps({
        "targets": [{"id": "grid", "format": "json", "url": f"http://127.0.0.1:{robot.port}/json/grid"}],
        "routes": [{"levels": [{"targets": ["grid"]}]}], "outbox_path": "push.sqlite", "retry_min_s": 0.5,
        "console_url": f"http://127.0.0.1:{port}/"}))
    cfg = {"database_url": f"sqlite:///{tmp_path / 'register.sqlite'}",
           "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"console-i18-{port}",
                    "reconnect_max_s": 1},
           "boxes": [{"id": "kelan-edge-1", "zones": [str(ROOT / "zones")], "towers": []}],
           "web": {"host": "127.0.0.1", "port": port, "poll_s": 0.3},
           "fusion": {"push_config": str(tmp_path / "push.yaml"), "push_poll_s": 0.5}}
    path = tmp_path / "console.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False))
    env = dict(os.environ, PW="alice-password")
    for cmd in (["adduser", "--config", str(path), "alice", "--password-env", "PW"],
                ["role", "--config", str(path), "alice", "supervisor"]):
        out = subprocess.run([sys.executable, "-m", "pipeline.cli", "console", *cmd], env=env, capture_output=True,
                             text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
    log = (tmp_path / "console.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "console", "--config", str(path)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, 60)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
            try:
                citizen = browser.new_context(locale="zh-CN").new_page()
                citizen.goto(base + "/public/tipoff")
                citizen.fill("#description", "晚上北山有挖掘机在挖")
                citizen.fill("#township", "Kelan sample township")
                citizen.fill("#address", "北山非法采砂点")
                citizen.fill("#contact", "13500004444")
                citizen.click("#submit")
                receipt = citizen.locator("#receipt").inner_text(timeout=20_000)
                assert len(receipt) == 10
                citizen.goto(f"{base}/public/receipt?code={receipt}")
                expect(citizen.locator("#status")).to_contain_text("处理中")

                ctx = browser.new_context(locale="zh-CN")
                page = ctx.new_page()
                page.goto(base + "/")
                page.fill("#username", "alice")
                page.fill("#password", "alice-password")
                page.click("#login")
                expect(page.locator("#alerts")).to_be_visible()
                page.goto(base + "/intake")
                expect(page.locator("#tipoff-form")).to_be_visible()
                page.goto(base + "/")
                html = page.content()
                csrf = html[html.index('"csrf": "') + 9:].split('"', 1)[0]
                anomaly = {"meter_id": "M-kelan-7", "zone_id": "kelan-illegal-site-01", "kind": "use_at_closed_site",
                           "t_start": time.strftime("%Y-%m-%dT%H:00:00+00:00", time.gmtime(time.time() - 7200)),
                           "t_end": time.strftime("%Y-%m-%dT%H:00:00+00:00", time.gmtime()), "kwh_excess": 380.0,
                           "score": 22.0}
                resp = ctx.request.post(base + "/api/clues/power", data=json.dumps(anomaly),
                                        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
                assert resp.status == 200 and resp.json()["added"] == 1
                event = make_event("kelan-edge-1-cam1-000077", box_id="kelan-edge-1", township="Kelan sample township",
                                   kind="illegal_site", t=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
                event["zone"].update(id="kelan-illegal-site-01", name="东沟非法采砂点")
                event["location"].update(lat=38.7000, lon=111.6013)
                event["snapshot"] = None
                pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="i18-pub", protocol=mqtt.MQTTv5)
                pub.connect("127.0.0.1", broker.port)
                pub.loop_start()
                pub.publish("minewatch/kelan-edge-1/events", json.dumps(event), qos=1).wait_for_publish(5)
                pub.loop_stop()
                pub.disconnect()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not any(
                        b["case"]["priority"] == 100 for b in robot.deliveries("/json/grid")):
                    time.sleep(0.3)
                pushed = robot.deliveries("/json/grid")
                top = [b for b in pushed if b["case"]["priority"] == 100]
                assert top, pushed
                assert top[0]["case"]["zone_id"] == "kelan-illegal-site-01"
                cases = ctx.request.get(base + "/api/cases").json()["cases"]
                assert [(c["priority"], c["clues"]) for c in cases][0] == (100, {"camera": 1, "power": 1})
                # the report had no map pin and no zone: an operator merges it into the case
                tip_case = next(c["case_id"] for c in cases if c["clues"] == {"tipoff": 1})
                resp = ctx.request.post(f"{base}/api/cases/{tip_case}/merge", data=json.dumps(
                    {"into": cases[0]["case_id"]}), headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
                assert resp.status == 200
                cases = ctx.request.get(base + "/api/cases").json()["cases"]
                assert len(cases) == 1 and cases[0]["clues"] == {"camera": 1, "power": 1, "tipoff": 1}
                page.goto(base + "/stats")
                expect(page.locator("h1")).to_contain_text("统计")
                expect(page.locator("body")).to_contain_text("kelan-edge-1")
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        robot.stop()
