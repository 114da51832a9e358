"""The console page's cases view in Chromium (a real `minewatch console` process, real Mosquitto): a case with
a camera alert, a power anomaly and a tip-off in one zone is listed first with its three kinds of clue and
opens to show each clue; a lone tip-off elsewhere is a lower-priority case listed after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Broker, free_port, wait_port
from test_console_browser import CHROME_ARGS, CHROMIUM
from test_console_store import ingest, make_event

from pipeline.console.clues import ClueRegister
from pipeline.console.clues_web import power_clue, tipoff_clue, zone_index
from pipeline.console.mapdata import load_zone_features
from pipeline.console.store import Store

ROOT = Path(__file__).resolve().parents[1]
ZONE = "kelan-illegal-site-01"


def fill_register(url: str) -> None:
    """One case with three kinds of clue in ZONE, and a lone tip-off in another township."""
    now = time.time()
    iso = lambda dt_s: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + dt_s))  # noqa: E731
    store = Store(url)
    try:
        event = make_event("kelan-edge-1-cam1-000042", box_id="kelan-edge-1", township="Kelan sample township",
                           kind="illegal_site", t=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 600)))
        event["zone"].update(id=ZONE, name="东沟非法采砂点")
        event["location"].update(lat=38.7000, lon=111.6013)
        event["snapshot"] = None
        assert ingest(store, event).new_alert
        zones = zone_index(load_zone_features([ROOT / "zones"], "kelan-edge-1"))
        register = ClueRegister(store.db)
        register.sync_alerts()
        _, power_case = register.add(power_clue(
            {"meter_id": "M-kelan-7", "zone_id": ZONE, "kind": "use_at_closed_site", "t_start": iso(-3600),
             "t_end": iso(0), "kwh_excess": 380.0, "score": 22.0}, zones))
        tip, contact, channel = tipoff_clue(
            {"description": "晚上北山有挖掘机在挖", "channel": "12345", "township": "Kelan sample township",
             "zone_id": ZONE, "lat": 38.6995, "lon": 111.6015, "t": iso(-300), "contact": "13500004444"}, zones)
        _, tip_case, _ = register.add_tipoff(tip, contact, channel)
        assert tip_case == power_case
        lone, contact, channel = tipoff_clue(
            {"description": "河边有人夜里拉沙", "channel": "110", "township": "另一个乡", "address": "南河滩",
             "t": iso(-200)}, zones)
        _, lone_case, _ = register.add_tipoff(lone, contact, channel)
        assert lone_case != power_case
    finally:
        store.close()


def test_cases_view_lists_fused_cases_by_priority_and_opens_their_clues(broker: Broker, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `bash scripts/setup.sh --dev` (apt-get install chromium)")
    port = free_port()
    url = f"sqlite:///{tmp_path / 'register.sqlite'}"
    cfg = {"database_url": url,
           "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"console-cases-{port}",
                    "reconnect_max_s": 1},
           "boxes": [{"id": "kelan-edge-1", "zones": [str(ROOT / "zones")], "towers": []}],
           "web": {"host": "127.0.0.1", "port": port, "poll_s": 0.3}}
    path = tmp_path / "console.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False))
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "console", "adduser", "--config", str(path), "alice",
                          "--password-env", "PW"], env=dict(os.environ, PW="alice-password"), capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    fill_register(url)
    log = (tmp_path / "console.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "console", "--config", str(path)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, 60)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
            try:
                page = browser.new_context(locale="zh-CN").new_page()
                page.goto(base + "/")
                page.fill("#username", "alice")
                page.fill("#password", "alice-password")
                page.click("#login")
                expect(page.locator("#cases-count")).to_have_text("2")
                page.click("#cases-btn")
                rows = page.locator("#cases-table tbody tr")
                expect(rows).to_have_count(2)
                assert rows.locator(".case-priority").all_inner_texts() == ["100", "30"]
                top = rows.nth(0)
                assert sorted(top.locator(".clue-kind").evaluate_all("els => els.map(e => e.dataset.kind)")) == [
                    "camera", "power", "tipoff"]
                expect(top).to_contain_text("Kelan sample township")
                expect(top).to_contain_text(ZONE)
                assert rows.nth(1).locator(".clue-kind").evaluate_all("els => els.map(e => e.dataset.kind)") == [
                    "tipoff"]
                top.click()
                clues = page.locator("#case-clues li")
                expect(clues).to_have_count(3)
                assert sorted(clues.evaluate_all("els => els.map(e => e.dataset.kind)")) == [
                    "camera", "power", "tipoff"]
                expect(page.locator("#case-detail")).to_contain_text("M-kelan-7")
                expect(page.locator("#case-detail")).to_contain_text("晚上北山有挖掘机在挖")
                expect(page.locator("#case-detail")).to_contain_text("excavator")
                expect(page.locator("#case-priority")).to_have_text("100")
                assert "13500004444" not in page.content()  # the reporter's contact stays private
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
