"""The clue register's HTTP API (behind the console's login and CSRF check, like every /api/ path).

    GET  /api/cases[?status=open|all]     fused cases, highest priority first (camera alerts synced first)
    GET  /api/cases/<case_id>             one case with its clues
    POST /api/cases/<case_id>/ack         an operator takes the case (its pushes stop escalating)
    POST /api/clues/power                 anomalies as `minewatch power check --json` writes them (JSON lines,
                                          a JSON list, or {"anomalies": [...]}); validated before storing
    POST /api/clues/tipoff                a tip-off from the intake page; answers the reporter's receipt code
    GET  /api/receipts/<code>             what the receipt code may tell (received, case status)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.wrappers import Response as WResponse

from pipeline.console.clues import TIPOFF_CHANNELS, Clue, ClueRegister, to_utc_iso
from pipeline.logs import get_logger
from pipeline.power.detect import KINDS as POWER_KINDS

log = get_logger("console.clues")
MAX_BODY_ROWS = 10_000


def _error(message: str, code: int) -> WResponse:
    resp = jsonify(error=message)
    resp.status_code = code
    return resp


def zone_index(features: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """zone id → kind, township, name and a representative point (mean of the outer ring)."""
    out: dict[str, dict[str, Any]] = {}
    for f in features:
        props = f.get("properties") or {}
        zid = props.get("id")
        if not zid:
            continue
        geom = f.get("geometry") or {}
        ring = geom.get("coordinates", [[]])[0] if geom.get("type") == "Polygon" else geom.get(
            "coordinates", [[[]]])[0][0]
        pts = [p for p in ring if isinstance(p, list) and len(p) >= 2]
        lat = sum(p[1] for p in pts) / len(pts) if pts else None
        lon = sum(p[0] for p in pts) / len(pts) if pts else None
        out[str(zid)] = {"kind": props.get("kind"), "township": props.get("township"), "name": props.get("name"),
                         "responsible": props.get("responsible") or {}, "lat": lat, "lon": lon}
    return out


def _num(d: Mapping[str, Any], key: str, lo: float, hi: float, required: bool = True) -> float | None:
    v = d.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= float(v) <= hi:
        raise ValueError(f"{key}: expected a number in [{lo:g}, {hi:g}], found {v!r}")
    return float(v)


def _text(d: Mapping[str, Any], key: str, max_len: int, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None or v == "":
        if required:
            raise ValueError(f"{key}: expected text, found nothing")
        return None
    if not isinstance(v, str) or len(v) > max_len:
        raise ValueError(f"{key}: expected text of at most {max_len} characters, found {str(v)[:40]!r}")
    return v.strip()


def power_clue(d: Mapping[str, Any], zones: Mapping[str, Mapping[str, Any]]) -> Clue:
    """One anomaly line → a clue; raises ValueError naming the field."""
    meter_id = _text(d, "meter_id", 64)
    kind = d.get("kind")
    if kind not in POWER_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(POWER_KINDS)}, found {kind!r}")
    try:
        t_start = to_utc_iso(str(d.get("t_start")))
        t_end = to_utc_iso(str(d.get("t_end")))
    except ValueError:
        raise ValueError(f"t_start/t_end: expected ISO 8601 times with offset, found {d.get('t_start')!r}") from None
    excess = _num(d, "kwh_excess", 0, 1e9)
    score = _num(d, "score", -1e6, 1e6)
    zone_id = _text(d, "zone_id", 128, required=False)
    zone = zones.get(zone_id or "", {})
    lat = _num(d, "lat", -90, 90, required=False)
    lon = _num(d, "lon", -180, 180, required=False)
    if lat is None or lon is None:
        lat, lon = zone.get("lat"), zone.get("lon")
    zone_kind = zone.get("kind") or ("closed_mine" if kind == "use_at_closed_site" else None)
    label = f"电表 {meter_id}: {kind} {excess:.0f} kWh"
    return Clue("power", f"{meter_id}|{kind}|{t_start}", t_start, label,
                {"meter_id": meter_id, "kind": kind, "t_start": t_start, "t_end": t_end, "kwh_excess": excess,
                 "score": score}, lat, lon, zone_id, zone_kind, _text(d, "township", 64, required=False)
                or zone.get("township"))


def tipoff_clue(d: Mapping[str, Any], zones: Mapping[str, Mapping[str, Any]]) -> tuple[Clue, str, str]:
    description = _text(d, "description", 4000)
    channel = d.get("channel")
    if channel not in TIPOFF_CHANNELS:
        raise ValueError(f"channel: expected one of {', '.join(TIPOFF_CHANNELS)}, found {channel!r}")
    township = _text(d, "township", 64)
    address = _text(d, "address", 300, required=False)
    lat = _num(d, "lat", -90, 90, required=False)
    lon = _num(d, "lon", -180, 180, required=False)
    if (lat is None) != (lon is None):
        raise ValueError("lat/lon: expected both or neither")
    if lat is None and not address:
        raise ValueError("place: expected a map pin (lat, lon) or an address")
    zone_id = _text(d, "zone_id", 128, required=False)
    zone = zones.get(zone_id or "", {})
    try:
        t = to_utc_iso(str(d["t"])) if d.get("t") else dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ValueError(f"t: expected an ISO 8601 time with offset, found {d.get('t')!r}") from None
    contact = _text(d, "contact", 200, required=False) or ""
    photos = d.get("photos") or []
    if not isinstance(photos, list) or len(photos) > 10:
        raise ValueError("photos: expected a list of at most 10 photo references")
    digest = hashlib.sha256(f"{t}|{township}|{description}".encode()).hexdigest()[:16]
    source = f"{t}|{digest}"
    clue = Clue("tipoff", source, t, f"举报（{channel}）: {description[:40]}",  # type: ignore[index]
                {"description": description, "address": address, "channel": channel, "photos": photos[:10]},
                lat, lon, zone_id, zone.get("kind"), township)
    return clue, contact, str(channel)


def register_clue_api(app: Flask, register: ClueRegister, zone_features: list[dict[str, Any]]) -> None:
    zones = zone_index(zone_features)

    def who() -> str:
        u = getattr(g, "user", None)
        return str(u["username"]) if u else "?"

    @app.get("/api/cases")
    def api_cases() -> WResponse:
        register.sync_alerts()
        status = request.args.get("status", "open")
        return jsonify(cases=register.cases(None if status == "all" else status))

    @app.get("/api/cases/<case_id>")
    def api_case(case_id: str) -> WResponse:
        register.sync_alerts()
        row = register.case(case_id)
        return jsonify(row) if row is not None else _error("no such case", 404)

    @app.post("/api/cases/<case_id>/ack")
    def api_ack(case_id: str) -> WResponse:
        if register.case(case_id) is None:
            return _error("no such case", 404)
        if not register.ack(case_id, who()):
            return _error("already acknowledged", 409)
        log.info("%s acknowledged %s", who(), case_id)
        return jsonify(ok=True)

    @app.post("/api/cases/<case_id>/merge")
    def api_merge(case_id: str) -> WResponse:
        body = request.get_json(silent=True) or {}
        try:
            register.merge(case_id, str(body.get("into", "")))
        except ValueError as exc:
            return _error(str(exc), 409)
        log.info("%s merged %s into %s", who(), case_id, body.get("into"))
        return jsonify(ok=True)

    @app.post("/api/cases/<case_id>/<action>")
    def api_case_status(case_id: str, action: str) -> WResponse:
        if action not in ("dismiss", "reopen"):
            return _error(f"unknown action {action}", 404)
        if not register.set_status(case_id, "dismissed" if action == "dismiss" else "open"):
            return _error("no such case, or merged", 409)
        log.info("%s: %s on %s", who(), action, case_id)
        return jsonify(ok=True)

    @app.get("/api/tipoffs/<clue_id>/reporter")
    def api_reporter(clue_id: str) -> WResponse:
        row = register.reporter(clue_id)
        if row is None:
            return _error("no such tip-off", 404)
        log.info("%s read the reporter of %s", who(), clue_id)
        return jsonify({**row, "reward": register.reward(clue_id)})

    @app.post("/api/tipoffs/<clue_id>/reward")
    def api_reward(clue_id: str) -> WResponse:
        body = request.get_json(silent=True) or {}
        try:
            amount = body.get("amount_yuan", 0)
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise ValueError(f"amount_yuan: expected a number, found {amount!r}")
            register.set_reward(clue_id, str(body.get("evaluation", "")), float(amount), bool(body.get("paid")),
                                str(body.get("note", ""))[:500], who())
        except LookupError as exc:
            return _error(str(exc), 404)
        except ValueError as exc:
            return _error(str(exc), 400)
        log.info("%s decided the reward of %s", who(), clue_id)
        return jsonify(ok=True)

    @app.post("/api/clues/power")
    def api_power() -> WResponse:
        text = request.get_data(as_text=True)
        try:
            data: Any = json.loads(text)
            items = data.get("anomalies", []) if isinstance(data, dict) and "anomalies" in data else data
            items = [items] if isinstance(items, dict) else items
        except json.JSONDecodeError:
            try:
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as exc:
                return _error(f"expected JSON lines of anomalies, found {exc.msg} at line {exc.lineno}", 400)
        if not isinstance(items, list) or len(items) > MAX_BODY_ROWS:
            return _error(f"expected a list of at most {MAX_BODY_ROWS} anomalies", 400)
        register.sync_alerts()
        added, duplicates, rejected, cases = 0, 0, [], set()
        for i, item in enumerate(items, start=1):
            try:
                if not isinstance(item, dict):
                    raise ValueError("expected an object")
                clue = power_clue(item, zones)
            except ValueError as exc:
                rejected.append({"row": i, "error": str(exc)})
                continue
            clue_id, case_id = register.add(clue)
            cases.add(case_id)
            added += clue_id is not None
            duplicates += clue_id is None
        log.info("%s added %d power anomalies (%d duplicates, %d refused)", who(), added, duplicates, len(rejected))
        status = 422 if rejected and not added and not duplicates else 200
        resp = jsonify(added=added, duplicates=duplicates, rejected=rejected, cases=sorted(cases))
        resp.status_code = status
        return resp

    @app.post("/api/clues/tipoff")
    def api_tipoff() -> WResponse:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error("expected a JSON object", 400)
        try:
            clue, contact, channel = tipoff_clue(body, zones)
        except ValueError as exc:
            return _error(str(exc), 400)
        register.sync_alerts()
        clue_id, case_id, receipt = register.add_tipoff(clue, contact, channel)
        log.info("%s took tip-off %s (%s) into %s", who(), clue_id, channel, case_id)
        return jsonify(clue_id=clue_id, case_id=case_id, receipt=receipt)

    @app.get("/api/receipts/<code>")
    def api_receipt(code: str) -> WResponse:
        found = register.receipt_status(code.strip().upper())
        return jsonify(found) if found is not None else _error("no such receipt", 404)
