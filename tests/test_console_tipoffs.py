"""Tip-off pages through the console: the hotline operator's intake form and the public form (Chinese
first), receipt codes, the signed form token, the per-address limit, privacy of the reporter's contact."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from test_console_web import login

from pipeline.console import auth
from pipeline.console.config import ConsoleConfig
from pipeline.console.roles import Roles
from pipeline.console.store import Store
from pipeline.console.tipoff_pages import PUBLIC_PER_HOUR
from pipeline.console.web import create_app

FORM = {"description": "夜里北山老矿洞有挖掘机和卡车", "township": "东沟乡", "address": "东沟村北山老矿洞",
        "lat": "", "lon": "", "t": "2026-11-29 23:40", "contact": "刘六 13600003333"}


@pytest.fixture(scope="module")
def ops_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tip") / "r.sqlite"
    store = Store(f"sqlite:///{path}")
    auth.add_operator(store, "op", "operator-password", "")
    auth.add_operator(store, "vic", "viewer-password", "")
    Roles(store.db).set("vic", "viewer", "test")
    store.close()
    return path


@pytest.fixture
def app(tmp_path: Path, ops_db: Path) -> Flask:
    db = tmp_path / "r.sqlite"
    shutil.copyfile(ops_db, db)
    return create_app(ConsoleConfig.model_validate({"database_url": f"sqlite:///{db}"}), Store(f"sqlite:///{db}"))


def _form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(csrf|token)" value="([^"]*)"', html))


def _receipt(html: str) -> str:
    return re.search(r'id="receipt"[^>]*>([A-Z0-9]+)<', html).group(1)  # type: ignore[union-attr]


def test_public_form_gives_a_receipt_and_keeps_the_contact_private(app: Flask) -> None:
    public = app.test_client()
    page = public.get("/public/tipoff").get_data(as_text=True)
    assert "举报" in page and 'lang="zh"' in page
    resp = public.post("/public/tipoff", data={**FORM, **_form_fields(page)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    receipt = _receipt(resp.get_data(as_text=True))
    status = public.get(f"/public/receipt?code={receipt.lower()}").get_data(as_text=True)
    assert "处理中" in status and "13600003333" not in status
    assert "没有这个回执码" in public.get("/public/receipt?code=NOPE").get_data(as_text=True)
    op = app.test_client()
    login(op, "op", "operator-password")
    cases = op.get("/api/cases").json["cases"]
    assert len(cases) == 1 and cases[0]["clues"] == {"tipoff": 1} and cases[0]["township"] == "东沟乡"
    detail = op.get(f"/api/cases/{cases[0]['case_id']}").json
    assert detail["clue_list"][0]["detail"]["channel"] == "web"
    assert detail["clue_list"][0]["t"] == "2026-11-29T15:40:00Z"  # 23:40 Beijing time
    assert "13600003333" not in str(detail)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [({"token": "123.abc"}, 400, "表单已过期"), ({"description": ""}, 400, "description"),
     ({"address": ""}, 400, "place"), ({"lat": "north"}, 400, "lat"), ({"t": "yesterday"}, 400, "t:")],
)
def test_public_form_refusals(app: Flask, change: dict[str, str], status: int, message: str) -> None:
    public = app.test_client()
    fields = _form_fields(public.get("/public/tipoff").get_data(as_text=True))
    resp = public.post("/public/tipoff", data={**FORM, **fields, **change})
    assert resp.status_code == status and message in resp.get_data(as_text=True)
    assert 'id="receipt"' not in resp.get_data(as_text=True)


def test_public_form_limit_per_address(app: Flask) -> None:
    public = app.test_client()
    fields = _form_fields(public.get("/public/tipoff").get_data(as_text=True))
    codes = [public.post("/public/tipoff", data={**FORM, **fields, "description": f"第{i}次"}).status_code
             for i in range(PUBLIC_PER_HOUR + 1)]
    assert codes == [200] * PUBLIC_PER_HOUR + [429]


@pytest.mark.parametrize(("user", "password", "expected"), [("op", "operator-password", 200),
                                                            ("vic", "viewer-password", 403)])
def test_intake_form_for_operators_only(app: Flask, user: str, password: str, expected: int) -> None:
    c = app.test_client()
    login(c, user, password)
    page = c.get("/intake").get_data(as_text=True)
    assert "举报登记" in page and '<option value="110"' in page
    data: dict[str, Any] = {**FORM, **_form_fields(page), "channel": "110"}
    resp = c.post("/intake", data=data)
    assert resp.status_code == expected
    if expected == 200:
        assert _receipt(resp.get_data(as_text=True))
        assert c.post("/intake", data={**data, "channel": "web"}).status_code == 400
    assert c.post("/intake", data={**data, "csrf": "wrong"}).status_code == 403


def test_photos_on_the_public_form(app: Flask) -> None:
    import io

    import cv2
    import numpy as np

    ok, jpeg = cv2.imencode(".jpg", np.full((40, 60, 3), 120, np.uint8))
    assert ok
    public = app.test_client()
    fields = _form_fields(public.get("/public/tipoff").get_data(as_text=True))
    bad = public.post("/public/tipoff", content_type="multipart/form-data", data={
        **FORM, **fields, "photos": [(io.BytesIO(b"MZ not an image"), "virus.exe")]})
    assert bad.status_code == 400 and "JPEG or PNG" in bad.get_data(as_text=True)
    resp = public.post("/public/tipoff", content_type="multipart/form-data", data={
        **FORM, **fields, "photos": [(io.BytesIO(jpeg.tobytes()), "a.jpg"), (io.BytesIO(jpeg.tobytes()), "b.jpg")]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert public.get("/api/tipoffs/x/photos/1").status_code == 401  # photos only behind the login
    op = app.test_client()
    login(op, "vic", "viewer-password")
    case_id = op.get("/api/cases").json["cases"][0]["case_id"]
    clue = op.get(f"/api/cases/{case_id}").json["clue_list"][0]
    assert clue["detail"]["photo_count"] == 2
    got = op.get(f"/api/tipoffs/{clue['clue_id']}/photos/2")
    assert got.status_code == 200 and got.mimetype == "image/jpeg" and got.data == jpeg.tobytes()
    assert op.get(f"/api/tipoffs/{clue['clue_id']}/photos/3").status_code == 404
