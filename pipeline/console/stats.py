"""Statistics of the register (issue 18 item 6): alerts, clues and fused cases by township, zone, class,
channel and month; repeat sites; time spent before each case step; the share of each camera's alerts that
operators dismissed as false. ``GET /api/stats`` (JSON), ``GET /export/stats.csv``, ``GET /stats`` (a page
of tables with bars; server-rendered, no script).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, Response, render_template_string

from pipeline.console.db import Database

PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>统计 statistics · minewatch</title>
<style>body{font:14px sans-serif;margin:1.5em}table{border-collapse:collapse;margin:0 0 1.5em}td,th{padding:2px 8px;
text-align:left}td.n{text-align:right}.bar{background:#c0392b;height:10px;display:inline-block}</style></head><body>
<h1>统计 Statistics</h1><p><a href="/">← 控制台 console</a> · <a href="/export/stats.csv">CSV</a></p>
{% for title, rows in tables %}<h2>{{ title }}</h2><table><tr><th>{{ rows.head[0] }}</th>{% for h in rows.head[1:] %}
<th>{{ h }}</th>{% endfor %}<th></th></tr>{% for r in rows.rows %}<tr><td>{{ r[0] }}</td>{% for v in r[1:] %}
<td class="n">{{ v }}</td>{% endfor %}<td><span class="bar" style="width:{{ (200 * (r[1] or 0) / rows.max)|int }}px">
</span></td></tr>{% endfor %}</table>{% endfor %}</body></html>"""


def _month(t: str | None) -> str:
    return (t or "")[:7] or "?"


def _hours(a: str, b: str) -> float:
    def p(x: str) -> datetime:
        return datetime.fromisoformat(x.replace("Z", "+00:00"))

    return (p(b) - p(a)).total_seconds() / 3600.0


def compute(db: Database) -> dict[str, list[dict[str, Any]]]:
    with db.tx(write=False) as cur:
        alerts = cur.all("SELECT alert_id, box_id, camera_id, class, township, zone_id, zone_name, t_first,"
                         " case_status FROM alerts")
        logs = cur.all("SELECT alert_id, action, t_done FROM case_log ORDER BY id")
        clues = cur.all("SELECT c.kind, c.township, c.zone_id, c.t, c.detail, p.channel FROM clues c"
                        " LEFT JOIN tipoff_private p ON p.clue_id = c.clue_id")
        cases = cur.all("SELECT case_id, township, zone_id, t_first, priority, status FROM fused_cases")
    out: dict[str, list[dict[str, Any]]] = {}

    def table(name: str, counter: Counter[tuple[str, ...]], keys: tuple[str, ...]) -> None:
        out[name] = [{**dict(zip(keys, k, strict=True)), "n": n} for k, n in counter.most_common()]

    table("alerts_by_township_month", Counter((a["township"] or "?", _month(a["t_first"])) for a in alerts),
          ("township", "month"))
    table("alerts_by_zone", Counter((a["zone_id"] or "?",) for a in alerts), ("zone_id",))
    table("alerts_by_class", Counter((a["class"],) for a in alerts), ("class",))
    table("clues_by_kind_month", Counter((c["kind"], _month(c["t"])) for c in clues), ("kind", "month"))
    table("tipoffs_by_channel", Counter((c["channel"] or "?",) for c in clues if c["kind"] == "tipoff"),
          ("channel",))
    table("cases_by_township_month", Counter((c["township"] or "?", _month(c["t_first"])) for c in cases),
          ("township", "month"))
    per_zone = Counter(c["zone_id"] for c in cases if c["zone_id"])
    out["repeat_sites"] = [{"zone_id": z, "cases": n} for z, n in per_zone.most_common() if n >= 2]
    first = {a["alert_id"]: a["t_first"] for a in alerts}
    waits: dict[str, list[float]] = defaultdict(list)
    last_t: dict[str, str] = {}
    for row in logs:
        aid = row["alert_id"]
        if row["action"] in ("note", "dismissed", "reopened") or aid not in first:
            continue
        start = last_t.get(aid, first[aid])
        waits[row["action"]].append(max(0.0, _hours(start, row["t_done"])))
        last_t[aid] = row["t_done"]
    out["hours_before_step"] = [{"step": s, "cases": len(v), "median_h": round(statistics.median(v), 1),
                                 "max_h": round(max(v), 1)} for s, v in waits.items()]
    cams: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a in alerts:
        key = f"{a['box_id']}/{a['camera_id']}"
        cams[key][0] += 1
        cams[key][1] += a["case_status"] == "dismissed"
    out["false_share_by_camera"] = [{"camera": k, "alerts": n, "dismissed": d, "false_share": round(d / n, 3)}
                                    for k, (n, d) in sorted(cams.items(), key=lambda kv: -kv[1][1] / kv[1][0])]
    return out


def to_csv(stats: dict[str, list[dict[str, Any]]]) -> str:
    """One CSV: table,key,value columns (long format), so every table fits one file."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["table", "row", "field", "value"])
    for name, rows in stats.items():
        for i, row in enumerate(rows):
            for k, v in row.items():
                w.writerow([name, i, k, v])
    return buf.getvalue()


def register_stats(app: Flask, db: Database, sync: Callable[[], object]) -> None:
    """``sync`` takes the camera alerts that are not clues yet into the clue register first."""

    @app.get("/api/stats")
    def api_stats() -> Response:
        from flask import jsonify

        sync()
        return jsonify(compute(db))

    @app.get("/export/stats.csv")
    def stats_csv() -> Response:
        sync()
        return Response("\ufeff" + to_csv(compute(db)), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=minewatch-stats.csv"})

    @app.get("/stats")
    def stats_page() -> str:
        sync()
        stats = compute(db)
        tables = []
        for name, rows in stats.items():
            if not rows:
                continue
            head = list(rows[0])
            ordered = [head[-1] if name != "false_share_by_camera" else "dismissed"] + [
                h for h in head if h != (head[-1] if name != "false_share_by_camera" else "dismissed")]
            label_keys = [h for h in ordered if not isinstance(rows[0][h], int | float)]
            num_keys = [h for h in ordered if isinstance(rows[0][h], int | float)]
            body = [[" · ".join(str(r[k]) for k in label_keys), *(r[k] for k in num_keys)] for r in rows]
            tables.append((name.replace("_", " "), {"head": [" · ".join(label_keys), *num_keys], "rows": body,
                                                     "max": max([float(b[1] or 0) for b in body] + [1.0])}))
        return render_template_string(PAGE, tables=tables)
