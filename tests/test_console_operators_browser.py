"""What operators meet on the page, in a real Chromium against two real console processes and Mosquitto:
Chinese names of classes and rules (page and 公示), the list beyond 500, a new alert's pin, sound and desktop
notification, the 90 % ellipse at county zoom, the 公示 publishing only reviewed cases, CSV times that say
their zone, and the warning about a broker that drops bursts."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from conftest import Broker
from test_console_browser import CHROME_ARGS, CHROMIUM, consoles  # noqa: F401 (a fixture)
from test_console_store import make_event

BOX = "kelan-edge-1"
MANY = 520  # beyond one page of the list (500)


def event(alert_id: str, lat: float, lon: float, **kw: object) -> dict[str, object]:
    e = make_event(
        alert_id, box_id=BOX, t=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), **kw  # type: ignore[arg-type]
    )
    e["location"].update(  # type: ignore[union-attr]
        lat=lat, lon=lon, ellipse_90={"semi_major_m": None, "semi_minor_m": None, "orientation_deg": None}
    )
    e["snapshot"] = None
    return e


def test_operators_page_labels_paging_new_pins_ellipse_notice_csv(
    consoles: tuple[str, str],  # noqa: F811
    broker: Broker,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _ = consoles
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ops-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()

    def publish(e: dict[str, object]) -> mqtt.MQTTMessageInfo:
        return pub.publish(f"minewatch/{BOX}/events", json.dumps(e, ensure_ascii=False), qos=1)

    publish(event("old-1", 38.70, 111.60)).wait_for_publish(5)  # there before the page opens
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROME_ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            ctx = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
            ctx.grant_permissions(["notifications"], origin=base)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/login")
            page.fill("#username", "alice")
            page.fill("#password", "alice-password")
            page.click("#login")
            old = page.locator('#alerts li[data-alert-id="old-1"]')
            expect(old).to_be_visible(timeout=10000)
            expect(old).to_contain_text("挖掘机")  # class in Chinese
            expect(old).to_contain_text("关闭矿区内作业")  # rule in Chinese
            expect(old).not_to_have_class(re.compile(r"\bfresh\b"))  # there before the page: not new
            page.click("#notify-btn")  # the operator allows sound and notifications once

            # a new alert: a pin that stands out, a sound, a desktop notification
            new = event(
                "new-1",
                38.75,
                111.65,
                kind="illegal_site",
            )
            new["location"]["ellipse_90"] = {  # type: ignore[index]
                "semi_major_m": 400.0,
                "semi_minor_m": 150.0,
                "orientation_deg": 60.0,
            }
            publish(new).wait_for_publish(5)
            fresh_pin = page.locator('.alert-pin[data-alert-id="new-1"]')
            expect(fresh_pin).to_have_class(re.compile(r"\bfresh\b"), timeout=10000)
            old_pin = page.locator('.alert-pin[data-alert-id="old-1"]')
            expect(old_pin).not_to_have_class(re.compile(r"\bfresh\b"))
            colour = "e => getComputedStyle(e).backgroundColor"
            assert fresh_pin.evaluate(colour) != old_pin.evaluate(colour)
            page.wait_for_function("+document.body.dataset.beeps >= 1 && +document.body.dataset.notified >= 1")
            expect(page.locator('#alerts li[data-alert-id="new-1"]')).to_contain_text("非法采矿点作业")

            # county zoom: the ellipse (~7 x 2.5 px here) is drawn above the pin, at the pin's tip
            page.evaluate("M.map.setView([38.75, 111.65], 10, {animate: false})")
            page.wait_for_timeout(300)
            ellipse = page.locator("path.alert-ellipse")
            expect(ellipse).to_have_count(1)
            z = page.evaluate(
                """() => [document.querySelector('path.alert-ellipse').closest('.leaflet-pane'),
                          M.map.getPane('markerPane')].map((p) => Number(getComputedStyle(p).zIndex))"""
            )
            assert z[0] > z[1], z
            box = ellipse.bounding_box()
            tip = page.evaluate("() => M.map.latLngToContainerPoint([38.75, 111.65])")
            origin = page.locator("#map").bounding_box()
            assert box is not None and origin is not None and box["width"] >= 3, box
            centre = (box["x"] + box["width"] / 2 - origin["x"], box["y"] + box["height"] / 2 - origin["y"])
            assert abs(centre[0] - tip["x"]) < 3 and abs(centre[1] - tip["y"]) < 3, (centre, tip)
            pin = fresh_pin.bounding_box()
            assert pin is not None and pin["y"] + pin["height"] / 2 - origin["y"] < tip["y"] - 4  # pin above its tip

            # opening it ends "new"
            page.locator('#alerts li[data-alert-id="new-1"]').click()
            expect(page.locator("#detail-title")).to_contain_text("挖掘机")
            expect(fresh_pin).not_to_have_class(re.compile(r"\bfresh\b"))

            # the 公示 shows only reviewed cases, in Chinese
            notice = ctx.request.get(base + "/notice").text()
            assert "new-1" not in notice and "old-1" not in notice
            page.evaluate("() => post('/api/alerts/old-1/steps', {step: 'stopped', actor: '李四'})")
            notice = ctx.request.get(base + "/notice").text()
            assert "old-1" in notice and "new-1" not in notice and "挖掘机" in notice and "excavator" not in notice

            # CSV times say they are UTC
            head = ctx.request.get(base + "/export/cases.csv").text().lstrip("\ufeff").splitlines()[0]
            assert "t_first_utc" in head and "stopped_t_done_utc" in head and ",t_first," not in head

            # beyond one page: the list says how many there are and loads more on request
            infos = [publish(event(f"bulk-{i:04d}", 38.6 + i * 1e-4, 111.5)) for i in range(MANY)]
            for info in infos:
                info.wait_for_publish(10)
            deadline = time.monotonic() + 60
            while ctx.request.get(base + "/api/alerts?limit=1").json()["total"] < MANY + 2:
                assert time.monotonic() < deadline, "the bulk alerts were not all stored"
                time.sleep(0.5)
            page.reload()
            expect(page.locator("#alerts li")).to_have_count(500, timeout=10000)
            expect(page.locator("#count")).to_contain_text(f"500 / {MANY + 2}")
            page.click("#more")
            expect(page.locator("#alerts li")).to_have_count(MANY + 2, timeout=10000)
            expect(page.locator("#more")).to_be_hidden()
            expect(page.locator("#alerts li.fresh")).to_have_count(0)  # older than the reload: not new

            # a broken event (Infinity is not JSON) is refused: the page still works and shows it in the quarantine
            bad = json.dumps(event("bad-1", 38.7, 111.6)).replace('"lat": 38.7,', '"lat": Infinity,', 1)
            assert "Infinity" in bad
            pub.publish(f"minewatch/{BOX}/events", bad, qos=1).wait_for_publish(5)
            expect(page.locator("#quarantine-count")).to_have_text("1", timeout=10000)
            expect(page.locator("#quarantine-btn")).to_have_class(re.compile(r"\bwarn\b"))
            page.click("#quarantine-btn")
            row = page.locator("#quarantine-table tbody tr")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Infinity is not a JSON number")
            page.keyboard.press("Escape")
            expect(page.locator('#alerts li[data-alert-id="bad-1"]')).to_have_count(0)

            # this test's broker is Mosquitto's default: the page says its queue is too small
            expect(page.locator("#broker-warning")).to_be_visible(timeout=90000)
            assert errors == [], errors
        finally:
            browser.close()
            pub.loop_stop()
