"""The console's web app (Flask): login, live alert list, map data, case steps, CSV export, public notice.

Every route but ``/login``, ``/healthz`` and the static files needs a logged-in operator: API, export and
snapshot requests without one get 401, pages a redirect to ``/login``. Changes (POST) also need the
session's CSRF token in the ``X-CSRF-Token`` header. The live page follows ``/api/stream`` (server-sent
events): the server polls the register's change feed every ``web.poll_s`` and tells the page to refetch,
so changes made through any console sharing the register show up on every page.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, jsonify, redirect, render_template, request, session, url_for
from flask.json.provider import DefaultJSONProvider
from werkzeug.wrappers import Response as WResponse

from pipeline.console import auth
from pipeline.console.cases import STATUSES, STEP_LABELS_ZH, STEPS, CaseError, next_step
from pipeline.console.clues import ClueRegister
from pipeline.console.clues_web import register_clue_api
from pipeline.console.config import ConsoleConfig
from pipeline.console.db import now_iso
from pipeline.console.export import cases_csv, local_time, notice_rows
from pipeline.console.hillshade import page_layer as hillshade_layer
from pipeline.console.labels import CLASS_LABELS_ZH, RULE_LABELS_ZH, ZONE_KIND_LABELS_ZH
from pipeline.console.mapdata import (
    configured_towers,
    load_zone_features,
    merge_towers,
    to_gcj02_features,
    to_gcj02_point,
)
from pipeline.console.operators import LOGIN_WINDOW_S
from pipeline.console.roles import Roles, register_role_checks
from pipeline.console.stats import register_stats
from pipeline.console.store import AlertListRow, Store
from pipeline.console.tipoff_pages import register_tipoff_pages
from pipeline.logs import get_logger

log = get_logger("console.web")
HERE = Path(__file__).resolve().parent
PUBLIC = ("/login", "/healthz", "/static/", "/public/")
#: a live stream is closed after this long (the browser reconnects at once) so threads are recycled
STREAM_MAX_S = 300.0
#: where a login may send the browser back to: a path on this site (no scheme, no host, no "//" or "/\\",
#: no tab or newline that a browser would drop to make "//host")
SAFE_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9/_.~%?=&+,;:@!$'()*-]*$")


def create_app(config: ConsoleConfig, store: Store, ingest_status: Callable[[], dict[str, Any]] | None = None) -> Flask:
    """The web app. ``ingest_status`` tells the page whether this console's MQTT link is up (and its counters)."""
    app = Flask("minewatch-console", template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.update(
        SECRET_KEY=store.secret("flask_secret_key"),
        SESSION_COOKIE_NAME="minewatch_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.web.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.web.session_hours),
        JSON_AS_ASCII=False,
    )
    app.json = StandardJSONProvider(app)
    app.json.ensure_ascii = False
    zones: list[dict[str, Any]] = []
    for box in config.boxes:
        zones += load_zone_features(box.zones, box.id)
    towers_cfg = configured_towers(config)
    gcj02 = config.web.tile_layer is not None and config.web.tile_layer.datum == "gcj02"
    if gcj02:  # the map's coordinates follow the tiles; texts on the page stay WGS84
        zones = to_gcj02_features(zones)
    tiles = ""
    if config.web.tile_layer is not None:
        parts = urlsplit(config.web.tile_layer.url.replace("{s}", "*"))
        tiles = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    # scripts only from here (no inline script runs); Leaflet positions with inline styles
    csp = (
        "default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline';"
        f" img-src 'self' data:{tiles}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    mbtiles = None
    if config.web.mbtiles_path is not None and config.web.tile_layer is None:
        from pipeline.console.mbtiles import MBTiles

        mbtiles = MBTiles(config.web.mbtiles_path)
    hillshade = None
    if config.web.hillshade is not None and config.web.tile_layer is None and mbtiles is None:  # offline base map
        from pipeline.console.hillshade import render

        hs = config.web.hillshade
        hillshade = render(hs.dem_path, hs.max_side_px, hs.azimuth_deg, hs.altitude_deg)
        log.info("hillshade of %s: %dx%d px", hs.dem_path.name, hillshade.shape_hw[1], hillshade.shape_hw[0])
    vendor_ok = (HERE / "static" / "vendor" / "leaflet" / "leaflet.js").is_file()
    if not vendor_ok:
        log.warning("Leaflet is not vendored: the map stays empty (run scripts/vendor_console_assets.sh)")

    def user() -> dict[str, str] | None:
        """The logged-in operator (username, display_name, csrf) of this request: its session must be live on
        the server (logging out ends it there, whatever the browser kept)."""
        if "user" in g:
            return g.user
        g.user = None
        sid = session.get("sid")
        live = store.sessions.get(str(sid)) if sid else None
        row = store.operators.get(live["username"]) if live else None
        if live is not None and row is not None:
            g.user = {"username": row["username"], "display_name": row["display_name"], "csrf": live["csrf"]}
        return g.user

    @app.before_request
    def _require_login() -> WResponse | None:
        path = request.path
        if path.startswith(PUBLIC):
            return None
        u = user()
        if u is None:
            if path.startswith(("/api/", "/export/", "/snapshots/")):
                return _json_error("login required", 401)
            return redirect(url_for("login", next=request.full_path.rstrip("?")))
        token = request.headers.get("X-CSRF-Token") or request.form.get("csrf")
        if request.method not in ("GET", "HEAD") and not secrets.compare_digest(str(token or ""), u["csrf"]):
            return _json_error("missing or wrong X-CSRF-Token", 403)
        return None

    @app.after_request
    def _headers(resp: WResponse) -> WResponse:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy", csp)
        return resp

    @app.get("/healthz")
    def healthz() -> WResponse:
        return jsonify(ok=True)

    def login_page(error: str, status: int = 200, retry_after_s: int | None = None) -> WResponse:
        # the login form's own CSRF token, in the (pre-login) session cookie: a form on another site cannot
        # log this browser in as someone else (login CSRF); SameSite=Strict keeps the cookie from it anyway
        token = session.get("login_csrf") or secrets.token_urlsafe(24)
        session["login_csrf"] = token
        html = render_template("login.html", title=config.web.title, error=error, csrf=token)
        resp = Response(html, status=status, mimetype="text/html")
        if retry_after_s:
            resp.headers["Retry-After"] = str(retry_after_s)
        return resp

    @app.route("/login", methods=["GET", "POST"])
    def login() -> WResponse:
        target = request.args.get("next") or "/"
        if not SAFE_NEXT.match(target):
            target = "/"
        if request.method != "POST":
            return login_page("")
        sent = request.form.get("csrf", "")
        if not sent or not secrets.compare_digest(sent, str(session.get("login_csrf", ""))):
            log.warning("login refused: the form's token is missing or wrong (a form on another site?)")
            return login_page("请重新登录 · the login form expired, log in again", 400)
        name = request.form.get("username", "").strip()[:64]
        ip = request.remote_addr or "?"
        why = store.logins.refused(name, ip)
        if why:
            log.warning("login for %r from %s refused: %s", name, ip, why)
            minutes = LOGIN_WINDOW_S // 60
            return login_page(f"登录失败次数过多 · too many failed logins: wait {minutes} minutes", 429, LOGIN_WINDOW_S)
        try:
            op = auth.verify(store, name, request.form.get("password", ""))
        except auth.LoginBusy:
            return login_page("系统繁忙 · too many logins at once, try again", 503, 5)
        if op is None:
            store.logins.failed(name, ip)
            log.warning("failed login for %r from %s", name, ip)
            time.sleep(0.5)
            return login_page("用户名或密码错误 · wrong user name or password")
        store.logins.succeeded(name, ip)
        sid, _csrf = store.sessions.start(op["username"], config.web.session_hours)
        session.clear()
        session.permanent = True
        session["sid"] = sid
        log.info("operator %s logged in from %s", op["username"], ip)
        return redirect(target)

    @app.post("/logout")
    def logout() -> WResponse:
        sid = session.get("sid")
        if sid:
            store.sessions.end(str(sid))  # the cookie, wherever a copy of it is, no longer reads or writes
        u = user()
        session.clear()
        if u:
            log.info("operator %s logged out", u["username"])
        return redirect(url_for("login"))

    @app.get("/")
    def index() -> str:
        u = user()
        assert u is not None
        page = {
            "csrf": u["csrf"],
            "user": {"username": u["username"], "display_name": u["display_name"]},
            "steps": list(STEPS),
            "step_labels": STEP_LABELS_ZH,
            "class_labels": CLASS_LABELS_ZH,
            "rule_labels": RULE_LABELS_ZH,
            "kind_labels": ZONE_KIND_LABELS_ZH,
            "statuses": list(STATUSES),
            "tile_layer": config.web.tile_layer.model_dump() if config.web.tile_layer else None,
            "sector_range_m": config.web.sector_range_m,
            "hillshade": hillshade_layer(hillshade) if hillshade is not None else None,
            "mbtiles": {"url": "/map/tiles/{z}/{x}/{y}", "min_zoom": mbtiles.min_zoom, "max_zoom": mbtiles.max_zoom,
                        "attribution": mbtiles.metadata.get("attribution", "")} if mbtiles is not None else None,
            "now": now_iso(),  # alerts the register received after this are new to this page
        }
        return render_template(
            "index.html",
            title=config.web.title,
            page_json=script_json(page),
            vendor_ok=vendor_ok,
            user=u,
            csrf=u["csrf"],
        )

    @app.get("/api/health")
    def api_health() -> WResponse:
        status = ingest_status() if ingest_status is not None else {"mqtt_connected": None}
        return jsonify(status)

    @app.get("/api/alerts")
    def api_alerts() -> WResponse:
        args = request.args
        limit, offset = args.get("limit", "500"), args.get("offset", "0")
        if not limit.isdigit() or not 1 <= int(limit) <= 5000:
            return _json_error(f"limit: expected an integer 1–5000, found {limit[:20]!r}", 400)
        if not offset.isdigit() or int(offset) > 10**9:
            return _json_error(f"offset: expected an integer ≥ 0, found {offset[:20]!r}", 400)
        filters = {
            "township": args.get("township") or None,
            "zone_kind": args.get("zone_kind") or None,
            "class_name": args.get("class") or None,
            "status": args.get("status") or None,
        }
        rows = store.list_alerts(**filters, limit=int(limit), offset=int(offset))
        alerts = [_summary(r) for r in rows]
        if gcj02:
            for a in alerts:
                a["lat"], a["lon"] = to_gcj02_point(a["lat"], a["lon"])
        # total: the list says how many there are beyond what it shows (the page loads more on request)
        return jsonify(
            alerts=alerts,
            total=store.count_alerts(**filters),
            offset=int(offset),
            facets=store.facets(),
            change=store.latest_change(),
        )

    @app.get("/api/alerts/<alert_id>")
    def api_alert(alert_id: str) -> WResponse:
        alert = store.get_alert(alert_id)
        if alert is None:
            return _json_error(f"no alert {alert_id}", 404)
        row: dict[str, Any] = dict(alert)
        row["next_step"] = next_step(alert["case_step"]) if alert["case_status"] == "open" else None
        return jsonify(row)

    @app.get("/api/quarantine")
    def api_quarantine() -> WResponse:
        """Messages the console refused (newest first): operators see what an edge box or someone else sent."""
        rows = [
            {**r, "preview": (store.quarantined_head(r["id"]) or b"")[:600].decode("utf-8", "replace")}
            for r in store.quarantined(limit=200)
        ]
        return jsonify(quarantine=rows)

    @app.get("/snapshots/<alert_id>.jpg")
    @app.get("/snapshots/<alert_id>/<sha256>.jpg")
    def snapshot(alert_id: str, sha256: str | None = None) -> WResponse:
        jpeg = store.snapshot(alert_id, sha256)
        if jpeg is None:
            abort(404)
        return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.post("/api/alerts/<alert_id>/steps")
    def api_step(alert_id: str) -> WResponse:
        body = request.get_json(silent=True) or {}
        u = user()
        assert u is not None
        try:
            store.cases.record_step(
                alert_id,
                str(body.get("step", "")),
                author=u["username"],
                actor=str(body.get("actor", "")).strip(),
                note=str(body.get("note", "")).strip(),
                t_done=_iso_or_none(body.get("t_done")),
            )
        except CaseError as exc:
            return _json_error(str(exc), 409 if exc.conflict else 400)
        except ValueError as exc:
            return _json_error(str(exc), 400)
        log.info("%s recorded %s on %s", u["username"], body.get("step"), alert_id)
        return jsonify(ok=True)

    @app.post("/api/alerts/<alert_id>/<action>")
    def api_status(alert_id: str, action: str) -> WResponse:
        body = request.get_json(silent=True) or {}
        u = user()
        assert u is not None
        note = str(body.get("note", "")).strip()
        try:
            if action == "dismiss":
                store.cases.dismiss(alert_id, u["username"], note)
            elif action == "reopen":
                store.cases.reopen(alert_id, u["username"], note)
            elif action == "note":
                store.cases.add_note(alert_id, u["username"], note)
            else:
                return _json_error(f"unknown action {action}", 404)
        except CaseError as exc:
            return _json_error(str(exc), 409 if exc.conflict else 400)
        log.info("%s: %s on %s", u["username"], action, alert_id)
        return jsonify(ok=True)

    @app.get("/api/map")
    def api_map() -> WResponse:
        towers = merge_towers(towers_cfg, store.towers())
        if gcj02:
            for t in towers:
                t["lat"], t["lon"] = to_gcj02_point(t.get("lat"), t.get("lon"))
        boxes: dict[str, dict[str, str | None]] = {
            b["box_id"]: {"box_id": b["box_id"], "available": b["available"], "t": b["t"]} for b in store.boxes()
        }
        for box in config.boxes:
            boxes.setdefault(box.id, {"box_id": box.id, "available": "unknown", "t": None})["name"] = box.name
        return jsonify(
            zones={"type": "FeatureCollection", "features": zones if request.args.get("zones") != "0" else []},
            towers=towers,
            boxes=sorted(boxes.values(), key=lambda b: str(b["box_id"])),
            sector_range_m=config.web.sector_range_m,
        )

    @app.get("/map/hillshade.png")
    def hillshade_png() -> WResponse:
        if hillshade is None:
            abort(404)
        return Response(hillshade.png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/map/tiles/<int:z>/<int:x>/<int:y>")
    def mbtiles_tile(z: int, x: int, y: int) -> WResponse:
        found = mbtiles.tile(z, x, y) if mbtiles is not None else None
        if found is None:
            abort(404)
        return Response(found[1], mimetype=found[0], headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/stream")
    def api_stream() -> WResponse:
        poll_s = config.web.poll_s

        def events() -> Iterator[str]:
            last = -1
            started = time.monotonic()
            beat = started
            yield "retry: 2000\n\n"
            while time.monotonic() - started < STREAM_MAX_S:
                change = store.latest_change()
                if change != last:
                    last = change
                    yield f"event: change\ndata: {change}\n\n"
                    beat = time.monotonic()
                elif time.monotonic() - beat > 15:
                    yield ": keepalive\n\n"
                    beat = time.monotonic()
                time.sleep(poll_s)

        return Response(
            events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @app.get("/export/cases.csv")
    def export_csv() -> WResponse:
        text = cases_csv(store, config.privacy.csv)
        stamp = now_iso()[:10]
        return Response(
            text.encode("utf-8"),
            mimetype="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="minewatch-cases-{stamp}.csv"'},
        )

    @app.get("/notice")
    def notice() -> str:
        closed_only = request.args.get("closed") == "1"
        rows = notice_rows(store, config.privacy.notice, include_open=not closed_only, tz=config.timezone)
        return render_template(
            "notice.html",
            rows=rows,
            authority=config.authority,
            printed=local_time(now_iso(), config.timezone, "%Y-%m-%d"),
            tz=config.timezone,
            show_notes=config.privacy.notice == "show",
            title=config.web.title,
            closed_only=closed_only,
        )

    clue_register = ClueRegister(store.db, config.fusion)  # issue 18: clues fused into cases, roles, statistics
    register_clue_api(app, clue_register, zones)
    register_role_checks(app, Roles(store.db), lambda name: store.operators.get(name) is not None)
    register_stats(app, store.db, clue_register.sync_alerts)
    register_tipoff_pages(app, clue_register, store.secret("tipoff_form_key"))
    return app


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class StandardJSONProvider(DefaultJSONProvider):
    """Standard JSON only: a NaN or Infinity (in a register written before messages were validated) becomes
    null instead of making the browser's JSON.parse fail for every operator."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        kwargs.setdefault("default", self.default)
        try:
            return json.dumps(obj, allow_nan=False, **kwargs)
        except ValueError:
            return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def script_json(value: Any) -> str:
    """JSON to put inside a <script> block: ``<``, ``>`` and ``&`` escaped, so that a ``</script>`` in a display
    name or zone name cannot end the block (JSON.parse reads the escapes back)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _summary(row: AlertListRow) -> dict[str, Any]:
    r: dict[str, Any] = dict(row)
    p = r.pop("payload")
    loc = p.get("location") or {}
    cam = p.get("camera") or {}
    r["ellipse_90"] = loc.get("ellipse_90")
    r["probability_in_zone"] = loc.get("probability_in_zone")
    r["camera_name"] = cam.get("name") or r["camera_id"]
    r["has_snapshot"] = int(r["snapshot_count"] or 0) > 0
    return r


def _iso_or_none(value: Any) -> str | None:
    """Accept an ISO 8601 time from the page (UTC, 'Z'); anything else is the server's now."""
    if not isinstance(value, str) or not value.strip():
        return None
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"t_done: expected an ISO 8601 time, found {value[:40]!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json_error(message: str, code: int) -> WResponse:
    resp = jsonify(error=message)
    resp.status_code = code
    return resp
