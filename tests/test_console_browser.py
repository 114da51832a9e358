"""End to end in a real headless browser (Debian's chromium driven by Playwright): the console process, a real
Mosquitto, an alert published on the broker → list, snapshot, map marker; every case step; a second
operator's change; CSV export; refusal of unauthenticated requests."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, free_port, wait_port
from test_console_store import make_event

from pipeline.console.cases import STEPS

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LEAFLET = ROOT / "pipeline" / "console" / "static" / "vendor" / "leaflet" / "leaflet.js"
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
]
SNAPSHOT_WH = (1280, 720)


def snapshot_jpeg() -> bytes:
    w, h = SNAPSHOT_WH
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = np.linspace(60, 160, w, dtype=np.uint8)[None, :, None]
    cv2.rectangle(img, (500, 300), (700, 420), (0, 160, 255), 4)
    cv2.putText(img, "excavator 0.87", (500, 290), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 160, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf.tobytes())


@pytest.fixture
def consoles(tmp_path: Path, broker: Broker) -> Iterator[tuple[str, str]]:
    """Two `minewatch console` processes of one share group on one register, as in a county's control room."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `bash scripts/setup.sh --dev` (apt-get install chromium)")
    if not LEAFLET.exists():
        pytest.fail("Leaflet is not vendored: run `bash scripts/vendor_console_assets.sh` (setup.sh --dev does)")
    paths = []
    for name in ("a", "b"):
        port = free_port()
        cfg = {
            "database_url": f"sqlite:///{tmp_path / 'register.sqlite'}",
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker.port,
                "client_id": f"console-e2e-{name}-{port}",
                "share_group": "control-room",
                "reconnect_max_s": 1,
            },
            "boxes": [
                {
                    "id": "kelan-edge-1",
                    "zones": [str(ROOT / "zones")],
                    "towers": [
                        {"id": "cam1", "name": "东山塔", "lat": 38.70, "lon": 111.60, "pan_deg": 90, "hfov_deg": 60}
                    ],
                }
            ],
            "web": {"host": "127.0.0.1", "port": port, "poll_s": 0.3, "sector_range_m": 1500},
            "privacy": {"notice": "mask", "csv": "show"},
        }
        path = tmp_path / f"console-{name}.yaml"
        path.write_text(json.dumps(cfg, ensure_ascii=False))  # JSON is YAML
        paths.append((path, port))
    env = dict(os.environ, ALICE_PW="alice-password", BOB_PW="bob-password1")
    for user, var in (("alice", "ALICE_PW"), ("bob", "BOB_PW")):
        cmd = [
            sys.executable,
            "-m",
            "pipeline.cli",
            "console",
            "adduser",
            "--config",
            str(paths[0][0]),
            user,
            "--name",
            user.title(),
            "--password-env",
            var,
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
    procs = []
    try:
        for path, _ in paths:
            log = (tmp_path / f"{path.stem}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pipeline.cli", "console", "--config", str(path)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        for _, port in paths:
            wait_port(port, 30)
        yield f"http://127.0.0.1:{paths[0][1]}", f"http://127.0.0.1:{paths[1][1]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_alert_to_closed_case_in_a_real_browser(consoles: tuple[str, str], broker: Broker, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, base_b = consoles  # alice works on console A, bob on console B
    event = make_event(
        "kelan-edge-1-cam1-000042",
        box_id="kelan-edge-1",
        township="Kelan sample township",
        kind="illegal_site",
        t=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    )
    event["location"].update(lat=38.7000, lon=111.6013)
    event["zone"].update(id="kelan-illegal-site-01", name="东沟非法采砂点")
    alert_id = event["alert_id"]
    jpeg = snapshot_jpeg()
    event["snapshot"].update(bytes=len(jpeg), sha256=hashlib.sha256(jpeg).hexdigest())

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
        try:
            alice_ctx = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
            bob_ctx = browser.new_context(viewport={"width": 1600, "height": 900})
            # unauthenticated: the page redirects to the login form, the API answers 401
            page = alice_ctx.new_page()
            errors: list[str] = []  # script errors, CSP refusals, failed loads
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            assert "/login" in page.url
            for path in ("/api/alerts", "/export/cases.csv", f"/snapshots/{alert_id}.jpg", "/api/map"):
                assert alice_ctx.request.get(base + path, max_redirects=0).status == 401, path
            errors.clear()  # the 401s asked for above are expected
            page.fill("#username", "alice")
            page.fill("#password", "alice-password")
            page.click("#login")
            expect(page.locator("#alerts")).to_be_visible()
            expect(page.locator(".leaflet-container")).to_be_visible()
            expect(page.locator("path.leaflet-interactive").first).to_be_attached()  # zones drawn as vectors

            # an alert published on the broker appears with its snapshot and map marker
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-pub", protocol=mqtt.MQTTv5)
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            t0 = time.monotonic()
            pub.publish("minewatch/kelan-edge-1/events", json.dumps(event), qos=1).wait_for_publish(5)
            pub.publish(f"minewatch/kelan-edge-1/snapshots/{alert_id}", jpeg, qos=1).wait_for_publish(5)
            pub.publish("minewatch/kelan-edge-1/available", b"online", qos=1, retain=True).wait_for_publish(5)
            item = page.locator(f'#alerts li[data-alert-id="{alert_id}"]')
            expect(item).to_be_visible(timeout=5000)
            expect(item).to_have_class(re.compile(r"\bfresh\b"))  # marked new until opened
            assert page.title().startswith("(1) ")
            expect(page.locator(f'.alert-pin[data-alert-id="{alert_id}"]')).to_be_attached(timeout=5000)
            appeared_s = time.monotonic() - t0
            expect(page.locator('#boxes .box.online[data-box-id="kelan-edge-1"]')).to_be_visible(timeout=5000)
            expect(page.locator("#mqtt.online")).to_be_visible(timeout=6000)  # this console's broker link
            page.keyboard.press("j")  # keyboard: select the first alert
            expect(page.locator("#detail-title")).to_have_attribute("data-alert-id", alert_id)
            expect(item).not_to_have_class(re.compile(r"\bfresh\b"))  # opened: no longer new
            assert not page.title().startswith("(")
            snap = page.locator("#snapshot")
            expect(snap).to_be_visible(timeout=5000)
            page.wait_for_function("document.querySelector('#snapshot').naturalWidth > 0")
            assert snap.evaluate("i => [i.naturalWidth, i.naturalHeight]") == list(SNAPSHOT_WH)  # full resolution
            expect(page.locator('#steps li[data-step="discovered"].done')).to_be_visible()
            page.screenshot(path=str(tmp_path / "console-alert.png"))

            # bob logs in too
            bob = bob_ctx.new_page()
            bob.goto(base_b + "/login")
            bob.fill("#username", "bob")
            bob.fill("#password", "bob-password1")
            bob.click("#login")
            bob.locator(f'#alerts li[data-alert-id="{alert_id}"]').click()

            # every step: alice records most with the keyboard; bob records "reported" and alice sees it live
            for step in STEPS[1:]:
                actor = f"actor {step}"
                if step == "reported":
                    expect(bob.locator("#step-form")).to_have_attribute("data-step", "reported", timeout=5000)
                    bob.fill("#step-actor", actor)
                    bob.fill("#step-note", "报告乡政府")
                    bob.click("#step-submit")
                else:
                    expect(page.locator("#step-form")).to_have_attribute("data-step", step, timeout=5000)
                    page.keyboard.press("Escape")
                    page.keyboard.press("n")  # focus the next-step form
                    page.keyboard.type(actor)
                    page.fill("#step-note", f"did {step}")
                    page.keyboard.press("Control+Enter")
                done = page.locator(f'#steps li[data-step="{step}"].done')
                expect(done).to_contain_text(actor, timeout=5000)  # on alice's page, whoever recorded it
            expect(page.locator('#steps li[data-step="reported"]')).to_contain_text("bob")
            expect(page.locator("#case-status")).to_have_text("closed")
            expect(page.locator("#step-form")).to_have_count(0)
            page.keyboard.press("2")  # status filter: closed
            expect(page.locator(f'#alerts li[data-alert-id="{alert_id}"]')).to_be_visible()
            page.screenshot(path=str(tmp_path / "console-closed.png"))
            notice_page = alice_ctx.new_page()
            notice_page.goto(base + "/notice")
            expect(notice_page.locator("#notice-table")).to_contain_text(alert_id)
            expect(notice_page.locator("#notice-table")).to_contain_text("张**")  # privacy.notice: mask
            notice_page.screenshot(path=str(tmp_path / "console-notice.png"))
            shots = os.environ.get("MINEWATCH_SCREENSHOTS")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                for name in ("console-alert.png", "console-closed.png", "console-notice.png"):
                    (Path(shots) / name).write_bytes((tmp_path / name).read_bytes())

            assert errors == [], errors

            # the CSV export contains the case with every step and its author
            resp = alice_ctx.request.get(base + "/export/cases.csv")
            assert resp.status == 200 and resp.headers["content-type"].startswith("text/csv")
            text = resp.text()
            assert alert_id in text and "actor rectified" in text and ",bob," in text
            notice = alice_ctx.request.get(base + "/notice").text()
            assert alert_id in notice and "整改" in notice
            pub.loop_stop()
        finally:
            browser.close()
    assert appeared_s < 5.0
    # the shared subscription handed the event to exactly one of the two consoles; both pages showed it
    logs = [(tmp_path / f"console-{n}.log").read_text(encoding="utf-8", errors="replace") for n in ("a", "b")]
    assert sum(text.count(f"new {alert_id} seq 1") for text in logs) == 1, logs
