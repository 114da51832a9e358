"""Tip-off pages (issue 18 item 2), server-rendered, no script, Chinese first:

- ``/intake`` (logged in, operator): the hotline operator's form (12345, 110, mail, letter, phone, visit);
- ``/public/tipoff`` (no login): the citizens' form (channel ``web``), with a form token signed by the
  console (a page of another site cannot post it for a visitor) and at most ``PUBLIC_PER_HOUR`` reports an
  hour from one address;
- ``/public/receipt`` (no login): what a receipt code may tell (received, the case's status).

Both forms end on a page with the receipt code. The reporter's contact goes to ``tipoff_private`` only.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import defaultdict, deque
from typing import Any

from flask import Flask, render_template_string, request

from pipeline.console.clues import TIPOFF_CHANNELS, ClueRegister
from pipeline.console.clues_web import tipoff_clue
from pipeline.logs import get_logger

log = get_logger("console.tipoffs")
PUBLIC_PER_HOUR = 5
MAX_PHOTOS = 5
MAX_PHOTO_BYTES = 5 * 2**20
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
TOKEN_MAX_AGE_S = 2 * 3600

FORM = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width,initial-scale=1"><title>{{ title }}</title><style>body{font:16px sans-serif;
max-width:40em;margin:1.5em auto;padding:0 1em}label{display:block;margin:.8em 0 .2em}input,textarea,select{
width:100%;font:inherit;padding:.3em}button{margin-top:1em;font:inherit;padding:.4em 1.5em}.err{color:#b00}
small{color:#555}</style></head><body><h1>{{ title }}</h1>
{% if error %}<p class="err" id="error">{{ error }}</p>{% endif %}
{% if receipt %}<p id="done">已收到您的举报，谢谢！回执码（请保存，用于查询进展）：</p><p><b id="receipt"
style="font-size:1.6em;letter-spacing:.1em">{{ receipt }}</b></p><p><small>Received. Keep this receipt code to
ask about progress.</small></p>{% else %}
<form method="post" id="tipoff-form" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="token" value="{{ token }}">
<label for="description">情况描述 What did you see? *</label><textarea id="description" name="description"
rows="5" maxlength="4000" required>{{ f.description }}</textarea>
<label for="township">乡镇 Township *</label><input id="township" name="township" maxlength="64" required
value="{{ f.township }}">
<label for="address">地点 Place (address or landmark)</label><input id="address" name="address" maxlength="300"
value="{{ f.address }}">
<label for="lat">纬度 / 经度 Latitude / longitude (WGS84, optional)</label><input id="lat" name="lat"
inputmode="decimal" value="{{ f.lat }}"><input id="lon" name="lon" inputmode="decimal" value="{{ f.lon }}">
<label for="t">时间 When (e.g. 2026-11-29 23:40)</label><input id="t" name="t" value="{{ f.t }}">
{% if channels %}<label for="channel">来源 Channel *</label><select id="channel" name="channel">
{% for c in channels %}<option value="{{ c }}"{% if c == f.channel %} selected{% endif %}>{{ c }}</option>
{% endfor %}</select>{% endif %}
<label for="photos">照片 Photos (JPEG/PNG, at most 5, 5 MB each)</label><input id="photos" name="photos"
type="file" accept="image/jpeg,image/png" multiple>
<label for="contact">联系方式 Your contact (kept private; only for the reward)</label><input id="contact"
name="contact" maxlength="200" value="{{ f.contact }}">
<button type="submit" id="submit">提交 Submit</button></form>{% endif %}
{% if public %}<p><a href="/public/receipt">查询进展 Ask about a report</a></p>{% else %}
<p><a href="/">← 控制台 console</a></p>{% endif %}</body></html>"""

RECEIPT = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>查询举报进展</title></head><body
style="font:16px sans-serif;max-width:40em;margin:1.5em auto"><h1>查询举报进展 Report progress</h1>
<form method="get"><input name="code" value="{{ code }}" maxlength="20">
<button type="submit">查询 Look up</button></form>
{% if code %}{% if found %}<p id="status">收到时间 received: {{ found.received }} · 状态 status:
{{ {"open": "处理中 in progress", "dismissed": "已核查 checked", "merged": "已合并处理 in progress"}.get(found.status,
found.status) }}</p>{% else %}<p id="status">没有这个回执码 no such receipt code</p>{% endif %}{% endif %}
</body></html>"""

OPERATOR_CHANNELS = tuple(c for c in TIPOFF_CHANNELS if c != "web")


def _fields(form: Any) -> dict[str, str]:
    return {k: str(form.get(k, "")).strip() for k in
            ("description", "township", "address", "lat", "lon", "t", "channel", "contact")}


def _to_body(f: dict[str, str], channel: str) -> dict[str, Any]:
    body: dict[str, Any] = {"description": f["description"], "township": f["township"], "channel": channel,
                            "address": f["address"] or None, "contact": f["contact"]}
    for k in ("lat", "lon"):
        if f[k]:
            try:
                body[k] = float(f[k])
            except ValueError:
                raise ValueError(f"{k}: expected a number, found {f[k][:20]!r}") from None
    if f["t"]:
        t = f["t"].replace(" ", "T")
        body["t"] = t if ("+" in t[10:] or t.endswith("Z")) else t + ("+08:00" if len(t) > 13 else ":00+08:00")
    return body


def photos_from(files: Any) -> list[tuple[str, bytes]]:
    """The uploaded photos, checked (JPEG or PNG by their first bytes, size, count); raises ValueError."""
    out: list[tuple[str, bytes]] = []
    for f in files:
        if not f or not f.filename:
            continue
        data = f.read(MAX_PHOTO_BYTES + 1)
        if len(data) > MAX_PHOTO_BYTES:
            raise ValueError(f"photos: expected at most {MAX_PHOTO_BYTES // 2**20} MB each, found a bigger one")
        mime = next((m for magic, m in _MAGIC if data.startswith(magic)), None)
        if mime is None:
            raise ValueError(f"photos: expected JPEG or PNG images, found {f.filename[:40]!r}")
        out.append((mime, data))
    if len(out) > MAX_PHOTOS:
        raise ValueError(f"photos: expected at most {MAX_PHOTOS}, found {len(out)}")
    return out


def register_tipoff_pages(app: Flask, register: ClueRegister, secret: str) -> None:
    hits: dict[str, deque[float]] = defaultdict(deque)
    lock = threading.Lock()

    def token(now: float | None = None) -> str:
        ts = str(int(now or time.time()))
        return ts + "." + hmac.new(secret.encode(), ts.encode(), hashlib.sha256).hexdigest()[:32]

    def token_ok(value: str) -> bool:
        ts, _, mac = value.partition(".")
        if not ts.isdigit() or time.time() - int(ts) > TOKEN_MAX_AGE_S:
            return False
        return hmac.compare_digest(value, token(float(ts)))

    def page(public: bool, **kw: Any) -> str:
        from flask import g

        u = getattr(g, "user", None)
        return render_template_string(
            FORM, title="举报 Report illegal mining" if public else "举报登记 Tip-off intake", public=public,
            channels=None if public else OPERATOR_CHANNELS, csrf=u["csrf"] if u else "", token=token(),
            f=kw.pop("f", {"channel": "12345"}), **kw)

    def take(public: bool) -> tuple[str, int]:
        f = _fields(request.form)
        channel = "web" if public else f["channel"]
        if not public and channel not in OPERATOR_CHANNELS:
            return page(public, f=f, error=f"来源 channel: expected one of {', '.join(OPERATOR_CHANNELS)}"), 400
        try:
            clue, contact, ch = tipoff_clue(_to_body(f, channel), {})
            photos = photos_from(request.files.getlist("photos"))
        except ValueError as exc:
            return page(public, f=f, error=f"请检查 please check — {exc}"), 400
        clue.detail["photo_count"] = len(photos)  # each at /api/tipoffs/<clue_id>/photos/<n>, n from 1
        clue_id, case_id, receipt = register.add_tipoff(clue, contact, ch, photos)
        log.info("tip-off %s (%s) into %s", clue_id, ch, case_id)
        return page(public, receipt=receipt), 200

    @app.route("/intake", methods=["GET", "POST"])
    def intake() -> tuple[str, int]:
        return take(False) if request.method == "POST" else (page(False), 200)

    @app.route("/public/tipoff", methods=["GET", "POST"])
    def public_tipoff() -> tuple[str, int]:
        if request.method == "GET":
            return page(True), 200
        if not token_ok(str(request.form.get("token", ""))):
            return page(True, f=_fields(request.form),
                        error="表单已过期，请重新提交 the form expired: send it again"), 400
        addr = request.remote_addr or "?"
        now = time.time()
        with lock:
            q = hits[addr]
            while q and now - q[0] > 3600:
                q.popleft()
            if len(q) >= PUBLIC_PER_HOUR:
                return page(True, f=_fields(request.form), error="提交太频繁，请稍后再试 too many reports: later"), 429
            q.append(now)
        return take(True)

    @app.get("/api/tipoffs/<clue_id>/photos/<int:n>")
    def tipoff_photo(clue_id: str, n: int) -> Any:
        from flask import Response, abort

        found = register.photo(clue_id, n)
        if found is None:
            abort(404)
        return Response(found[1], mimetype=found[0], headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/public/receipt")
    def public_receipt() -> str:
        code = str(request.args.get("code", "")).strip().upper()[:20]
        return render_template_string(RECEIPT, code=code, found=register.receipt_status(code) if code else None)
