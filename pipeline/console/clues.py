"""One register for every clue — camera alerts, power anomalies, tip-offs — fused into cases (issue 18.3).

A new clue joins the open case that has a clue in the same zone, or within ``link_distance_m``, whose time
span (widened by ``link_window_h`` either side) contains the clue's time; otherwise it opens a case. The
case's priority (0–100) follows from its clues:

| clue | points |
|---|---|
| camera: excavator / truck (machinery) | 50 (+10 at a closed mine or illegal site) |
| camera: fire / smoke | 60; person 30 |
| power: use_at_closed_site 50, sudden_return 45, night_or_holiday_use 40, step_change 35 | |
| tip-off | 30 |
| each further kind of clue in the case | +15 |
| **power anomaly and machinery in the same case at a closed mine** | **100** (the top of the list) |

Camera alerts are taken from the register's ``alerts`` table (``sync_alerts``: every alert that is not yet
a clue); power anomalies come as ``minewatch power check --json`` lines; tip-offs from the intake API. A
clue's source id is unique per kind, so posting the same anomaly twice adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.console.db import Cursor, Database, now_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS clues (
    clue_id TEXT PRIMARY KEY, kind TEXT NOT NULL, source_id TEXT NOT NULL, t TEXT NOT NULL,
    lat REAL, lon REAL, zone_id TEXT, zone_kind TEXT, township TEXT, label TEXT NOT NULL,
    detail TEXT NOT NULL, case_id TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS clues_source ON clues (kind, source_id);
CREATE INDEX IF NOT EXISTS clues_case ON clues (case_id);
CREATE TABLE IF NOT EXISTS fused_cases (
    case_id TEXT PRIMARY KEY, status TEXT NOT NULL, priority INTEGER NOT NULL, reason TEXT NOT NULL,
    township TEXT, zone_id TEXT, zone_kind TEXT, lat REAL, lon REAL, t_first TEXT NOT NULL,
    t_last TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, acked_by TEXT, acked_at TEXT
);
CREATE TABLE IF NOT EXISTS tipoff_private (
    clue_id TEXT PRIMARY KEY, receipt TEXT NOT NULL UNIQUE, contact TEXT NOT NULL, channel TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tipoff_photos (
    clue_id TEXT NOT NULL, n INTEGER NOT NULL, mime TEXT NOT NULL, data {blob} NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (clue_id, n)
);
CREATE TABLE IF NOT EXISTS tipoff_rewards (
    clue_id TEXT PRIMARY KEY, evaluation TEXT NOT NULL, amount_yuan REAL NOT NULL, paid INTEGER NOT NULL,
    note TEXT NOT NULL, decided_by TEXT NOT NULL, decided_at TEXT NOT NULL
)
"""
EVALUATIONS = ("valid", "partly", "invalid")
CLUE_KINDS = ("camera", "power", "tipoff")
MACHINERY = ("excavator", "truck")
POWER_POINTS = {"use_at_closed_site": 50, "sudden_return": 45, "night_or_holiday_use": 40, "step_change": 35}
TIPOFF_CHANNELS = ("12345", "110", "mail", "letter", "web", "phone", "visit")
_RECEIPT_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class FusionConfig(BaseModel):
    """How clues are linked into cases."""

    model_config = ConfigDict(extra="forbid")

    link_distance_m: float = Field(
        1500.0, ge=0.0, le=50_000.0,
        description="Clues this close (or in the same zone) may join one case. Too low: a meter's anomaly and"
        " the excavator seen 2 km away on the same site stay apart; too high: unrelated sites merge.")
    link_window_h: float = Field(
        72.0, ge=0.0, le=24 * 90,
        description="Clues this many hours before or after a case's span join it. Too low: night power use and"
        " the next morning's excavator stay apart; too high: last month's case swallows a new one.")
    push_config: Path | None = Field(
        None, description="push.yaml (docs/PUSH.md): new fused cases and escalations go to the responsible"
        " people's robots and webhooks; relative to console.yaml. None: no pushes.")
    push_poll_s: float = Field(
        5.0, gt=0.0, le=300.0,
        description="How often cases are looked at for pushing. Too low: load on the register; too high: the"
        " push waits that long after the alert.")


@dataclass(frozen=True)
class Clue:
    kind: str  # camera | power | tipoff
    source_id: str
    t: str  # ISO 8601 UTC (Z)
    label: str
    detail: dict[str, Any]
    lat: float | None = None
    lon: float | None = None
    zone_id: str | None = None
    zone_kind: str | None = None
    township: str | None = None


def to_utc_iso(value: str) -> str:
    """Any ISO 8601 time with offset → ``YYYY-MM-DDTHH:MM:SSZ``; raises ValueError."""
    t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("a time with offset")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _t(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


def clue_points(c: Mapping[str, Any]) -> int:
    detail = c["detail"] if isinstance(c["detail"], dict) else json.loads(c["detail"])
    if c["kind"] == "camera":
        cls = str(detail.get("class", ""))
        if cls in MACHINERY:
            return 50 + (10 if c.get("zone_kind") in ("closed_mine", "illegal_site") else 0)
        return 60 if cls in ("fire", "smoke") else 30
    if c["kind"] == "power":
        return POWER_POINTS.get(str(detail.get("kind", "")), 35)
    return 30


def priority(clues: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """(priority 0–100, why) of a case with these clues."""
    if not clues:
        return 0, ""
    kinds = sorted({c["kind"] for c in clues})
    details = [c["detail"] if isinstance(c["detail"], dict) else json.loads(c["detail"]) for c in clues]
    machinery = any(c["kind"] == "camera" and d.get("class") in MACHINERY for c, d in zip(clues, details, strict=True))
    power = [d for c, d in zip(clues, details, strict=True) if c["kind"] == "power"]
    closed = any(c.get("zone_kind") == "closed_mine" for c in clues) or any(
        d.get("kind") == "use_at_closed_site" for d in power)
    if machinery and power and closed:
        return 100, "用电异常 + 机械 @ 关闭矿区 / power anomaly and machinery at a closed mine"
    best = max(clue_points(c) for c in clues)
    score = min(99, best + 15 * (len(kinds) - 1))
    return score, " + ".join(kinds)


class ClueRegister:
    def __init__(self, db: Database, cfg: FusionConfig | None = None) -> None:
        self.db = db
        self.cfg = cfg or FusionConfig()
        with db.tx() as cur:
            for statement in SCHEMA.replace("{blob}", "BYTEA" if db.dialect == "postgres" else "BLOB").split(";"):
                if statement.strip():
                    cur.execute(statement)

    # -- adding ---------------------------------------------------------------------------------------------
    def add(self, clue: Clue) -> tuple[str | None, str]:
        """(clue_id, case_id); clue_id is None when this source was registered before (its case is given)."""
        with self.db.tx() as cur:
            return self._add(cur, clue)

    def _add(self, cur: Cursor, clue: Clue) -> tuple[str | None, str]:
        old = cur.one("SELECT case_id FROM clues WHERE kind = ? AND source_id = ?", (clue.kind, clue.source_id))
        if old is not None:
            return None, str(old["case_id"])
        case_id = self._match(cur, clue)
        now = now_iso()
        if case_id is None:
            case_id = f"case-{clue.t[:10].replace('-', '')}-{secrets.token_hex(4)}"
            cur.execute(
                "INSERT INTO fused_cases (case_id, status, priority, reason, township, zone_id, zone_kind, lat, lon,"
                " t_first, t_last, created_at, updated_at) VALUES (?, 'open', 0, '', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (case_id, clue.township, clue.zone_id, clue.zone_kind, clue.lat, clue.lon, clue.t, clue.t, now, now))
        clue_id = f"{clue.kind}-{secrets.token_hex(6)}"
        cur.execute(
            "INSERT INTO clues (clue_id, kind, source_id, t, lat, lon, zone_id, zone_kind, township, label, detail,"
            " case_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (clue_id, clue.kind, clue.source_id, clue.t, clue.lat, clue.lon, clue.zone_id, clue.zone_kind,
             clue.township, clue.label, json.dumps(clue.detail, ensure_ascii=False), case_id, now))
        self._refresh(cur, case_id, now)
        return clue_id, case_id

    def _match(self, cur: Cursor, clue: Clue) -> str | None:
        window = dt.timedelta(hours=self.cfg.link_window_h)
        t = _t(clue.t)
        lo = (t - window).strftime("%Y-%m-%dT%H:%M:%SZ")
        hi = (t + window).strftime("%Y-%m-%dT%H:%M:%SZ")
        cases = cur.all("SELECT case_id, priority FROM fused_cases WHERE status = 'open' AND t_last >= ?"
                        " AND t_first <= ? ORDER BY priority DESC, t_last DESC", (lo, hi))
        best: tuple[float, str] | None = None
        for case in cases:
            for other in cur.all("SELECT zone_id, lat, lon FROM clues WHERE case_id = ?", (case["case_id"],)):
                if clue.zone_id and other["zone_id"] == clue.zone_id:
                    d = 0.0
                elif None not in (clue.lat, clue.lon, other["lat"], other["lon"]):
                    d = distance_m(float(clue.lat), float(clue.lon), float(other["lat"]), float(other["lon"]))  # type: ignore[arg-type]
                else:
                    continue
                if d <= self.cfg.link_distance_m and (best is None or d < best[0]):
                    best = (d, str(case["case_id"]))
        return None if best is None else best[1]

    def _refresh(self, cur: Cursor, case_id: str, now: str) -> None:
        clues = cur.all("SELECT kind, detail, zone_kind, t, township, zone_id, lat, lon FROM clues WHERE case_id = ?"
                        " ORDER BY t", (case_id,))
        score, reason = priority(clues)
        where = next((c for c in clues if c["zone_id"]), clues[0])
        pos = next((c for c in clues if c["lat"] is not None), where)
        cur.execute(
            "UPDATE fused_cases SET priority = ?, reason = ?, t_first = ?, t_last = ?, zone_id = ?, zone_kind = ?,"
            " township = COALESCE(?, township), lat = ?, lon = ?, updated_at = ? WHERE case_id = ?",
            (score, reason, clues[0]["t"], clues[-1]["t"], where["zone_id"], where["zone_kind"], where["township"],
             pos["lat"], pos["lon"], now, case_id))

    def sync_alerts(self) -> int:
        """Register every camera alert of the register that is not a clue yet; returns how many."""
        with self.db.tx() as cur:
            rows = cur.all(
                "SELECT a.alert_id, a.class, a.rule, a.score, a.township, a.zone_kind, a.zone_id, a.zone_name,"
                " a.lat, a.lon, a.t_first, a.camera_id, a.box_id FROM alerts a LEFT JOIN clues c"
                " ON c.kind = 'camera' AND c.source_id = a.alert_id WHERE c.clue_id IS NULL ORDER BY a.t_first")
            for a in rows:
                self._add(cur, Clue(
                    "camera", a["alert_id"], to_utc_iso(a["t_first"]),
                    f"{a['class']} ({a['box_id']}/{a['camera_id']})",
                    {"class": a["class"], "rule": a["rule"], "score": a["score"], "alert_id": a["alert_id"],
                     "zone_name": a["zone_name"]},
                    a["lat"], a["lon"], a["zone_id"], a["zone_kind"], a["township"]))
        return len(rows)

    def add_tipoff(self, clue: Clue, contact: str, channel: str,
                   photos: Sequence[tuple[str, bytes]] = ()) -> tuple[str, str, str]:
        """(clue_id, case_id, receipt code); the reporter's contact is kept apart (never in the case);
        ``photos`` as (mime, bytes), already checked by the caller."""
        import hashlib

        receipt = "".join(secrets.choice(_RECEIPT_ALPHABET) for _ in range(10))
        with self.db.tx() as cur:
            clue_id, case_id = self._add(cur, clue)
            assert clue_id is not None
            cur.execute("INSERT INTO tipoff_private (clue_id, receipt, contact, channel) VALUES (?, ?, ?, ?)",
                        (clue_id, receipt, contact, channel))
            for n, (mime, data) in enumerate(photos, start=1):
                cur.execute("INSERT INTO tipoff_photos (clue_id, n, mime, data, sha256) VALUES (?, ?, ?, ?, ?)",
                            (clue_id, n, mime, data, hashlib.sha256(data).hexdigest()))
        return clue_id, case_id, receipt

    def photo(self, clue_id: str, n: int) -> tuple[str, bytes] | None:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT mime, data FROM tipoff_photos WHERE clue_id = ? AND n = ?", (clue_id, n))
        return None if row is None else (str(row["mime"]), bytes(row["data"]))

    def photo_count(self, clue_id: str) -> int:
        with self.db.tx(write=False) as cur:
            return cur.count("SELECT COUNT(*) AS n FROM tipoff_photos WHERE clue_id = ?", (clue_id,))

    def ack(self, case_id: str, username: str) -> bool:
        """An operator took the case: it stops escalating. False when there is no such case or it was taken."""
        with self.db.tx() as cur:
            return bool(cur.execute(
                "UPDATE fused_cases SET acked_by = ?, acked_at = ?, updated_at = ? WHERE case_id = ?"
                " AND acked_by IS NULL", (username, now_iso(), now_iso(), case_id)))

    def merge(self, case_id: str, into: str) -> None:
        """Move every clue of ``case_id`` into ``into`` (both open); raises ValueError."""
        if case_id == into:
            raise ValueError("into: expected another case")
        with self.db.tx() as cur:
            rows = cur.all("SELECT case_id, status FROM fused_cases WHERE case_id IN (?, ?)", (case_id, into))
            if len(rows) != 2 or any(r["status"] != "open" for r in rows):
                raise ValueError("into: expected two open cases")
            cur.execute("UPDATE clues SET case_id = ? WHERE case_id = ?", (into, case_id))
            cur.execute("UPDATE fused_cases SET status = 'merged', reason = ?, updated_at = ? WHERE case_id = ?",
                        (f"merged into {into}", now_iso(), case_id))
            self._refresh(cur, into, now_iso())

    def set_status(self, case_id: str, status: str) -> bool:
        with self.db.tx() as cur:
            return bool(cur.execute("UPDATE fused_cases SET status = ?, updated_at = ? WHERE case_id = ?"
                                    " AND status IN ('open', 'dismissed')", (status, now_iso(), case_id)))

    def reporter(self, clue_id: str) -> dict[str, Any] | None:
        with self.db.tx(write=False) as cur:
            return cur.one("SELECT contact, channel, receipt FROM tipoff_private WHERE clue_id = ?", (clue_id,))

    def set_reward(self, clue_id: str, evaluation: str, amount_yuan: float, paid: bool, note: str, by: str) -> None:
        if evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation: expected one of {', '.join(EVALUATIONS)}, found {evaluation!r}")
        if not 0 <= amount_yuan <= 1e7:
            raise ValueError(f"amount_yuan: expected 0..1e7, found {amount_yuan}")
        with self.db.tx() as cur:
            if cur.one("SELECT 1 AS x FROM tipoff_private WHERE clue_id = ?", (clue_id,)) is None:
                raise LookupError("no such tip-off")
            cur.execute("INSERT INTO tipoff_rewards VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (clue_id) DO UPDATE SET"
                        " evaluation = excluded.evaluation, amount_yuan = excluded.amount_yuan, paid = excluded.paid,"
                        " note = excluded.note, decided_by = excluded.decided_by, decided_at = excluded.decided_at",
                        (clue_id, evaluation, amount_yuan, int(paid), note, by, now_iso()))

    def reward(self, clue_id: str) -> dict[str, Any] | None:
        with self.db.tx(write=False) as cur:
            return cur.one("SELECT evaluation, amount_yuan, paid, note, decided_by, decided_at FROM tipoff_rewards"
                           " WHERE clue_id = ?", (clue_id,))

    def receipt_status(self, receipt: str) -> dict[str, Any] | None:
        """What a reporter may learn with the receipt code: received, the case's status, nothing else."""
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT c.t, f.status, f.updated_at FROM tipoff_private p JOIN clues c"
                          " ON c.clue_id = p.clue_id JOIN fused_cases f ON f.case_id = c.case_id WHERE p.receipt = ?",
                          (receipt,))
        return None if row is None else {"received": row["t"], "status": row["status"], "updated_at": row["updated_at"]}

    # -- reading --------------------------------------------------------------------------------------------
    def cases(self, status: str | None = "open", limit: int = 500) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as cur:
            sql = "SELECT * FROM fused_cases"
            params: list[Any] = []
            if status:
                sql += " WHERE status = ?"
                params.append(status)
            rows = cur.all(sql + " ORDER BY priority DESC, t_last DESC LIMIT ?", (*params, limit))
            counts = cur.all("SELECT case_id, kind, COUNT(*) AS n FROM clues GROUP BY case_id, kind")
        by_case: dict[str, dict[str, int]] = {}
        for c in counts:
            by_case.setdefault(c["case_id"], {})[c["kind"]] = int(c["n"])
        for r in rows:
            r["clues"] = by_case.get(r["case_id"], {})
        return rows

    def case(self, case_id: str) -> dict[str, Any] | None:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT * FROM fused_cases WHERE case_id = ?", (case_id,))
            if row is None:
                return None
            clues = cur.all("SELECT clue_id, kind, source_id, t, lat, lon, zone_id, zone_kind, township, label,"
                            " detail FROM clues WHERE case_id = ? ORDER BY t", (case_id,))
        for c in clues:
            c["detail"] = json.loads(c["detail"])
        row["clue_list"] = clues
        return row
