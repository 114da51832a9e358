"""Bodies for WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书) group robots and a generic JSON webhook, and
how to tell from their answer whether a push arrived.

The robots answer HTTP 200 even when they refuse a message (a wrong key, a keyword missing, 20 messages a
minute exceeded): a push counts as delivered only on a 2xx **and** ``errcode`` (WeCom, DingTalk) or
``code`` / ``StatusCode`` (Feishu) equal to 0. The generic webhook: any 2xx.

Signing (加签) is done at send time, since the robots refuse signatures older than an hour: DingTalk gets
``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(secret, "ts\\nsecret")) in the URL, Feishu gets
``timestamp`` (s) and ``sign`` = base64(HMAC-SHA256(key="ts\\nsecret", msg="")) in the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

EVENT_TITLE = {"new": "新案件", "escalation": "案件升级（未确认）", "update": "案件更新"}


@dataclass(frozen=True)
class CaseNotice:
    """What a push says about a case."""

    case_id: str
    event: str  # new | escalation | update
    level: int
    title: str  # e.g. "关闭矿区发现挖掘机"
    t: str  # ISO 8601 of the first clue
    priority: int = 0
    township: str | None = None
    zone_id: str | None = None
    zone_name: str | None = None
    zone_kind: str | None = None
    responsible_name: str | None = None
    responsible_phone: str | None = None
    lat: float | None = None
    lon: float | None = None
    snapshot_url: str | None = None
    case_url: str | None = None
    clues: list[str] = field(default_factory=list)  # one line per clue: "摄像头 t1: excavator 0.87"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def map_url(n: CaseNotice, template: str | None) -> str | None:
    if template is None or n.lat is None or n.lon is None:
        return None
    return template.format(lat=f"{n.lat:.6f}", lon=f"{n.lon:.6f}", name=quote(n.zone_name or n.case_id))


def _lines(n: CaseNotice, map_link: str | None) -> list[tuple[str, str | None]]:
    """(text, link) lines shared by every format."""
    head = f"【{EVENT_TITLE.get(n.event, n.event)}】{n.title}"
    if n.event == "escalation":
        head += f"（第 {n.level} 级）"
    out: list[tuple[str, str | None]] = [(head, None)]
    place = " ".join(x for x in (n.township, n.zone_name) if x) or "—"
    out.append((f"地点：{place}" + (f"（{n.zone_kind}）" if n.zone_kind else ""), None))
    if n.lat is not None and n.lon is not None:
        out.append((f"位置：{n.lat:.5f}, {n.lon:.5f}（WGS84）", map_url(n, map_link)))
    out.append((f"时间：{n.t}", None))
    out.append((f"优先级：{n.priority}", None))
    if n.responsible_name or n.responsible_phone:
        out.append((f"责任人：{n.responsible_name or ''} {n.responsible_phone or ''}".strip(), None))
    for c in n.clues[:6]:
        out.append((f"· {c}", None))
    if n.snapshot_url:
        out.append(("现场图片", n.snapshot_url))
    if n.case_url:
        out.append(("打开案件", n.case_url))
    out.append((f"编号：{n.case_id}", None))
    return out


def _markdown(n: CaseNotice, map_link: str | None, push_id: str) -> str:
    rows = []
    for i, (text, link) in enumerate(_lines(n, map_link)):
        if i == 0:
            rows.append(f"### {text}")
        elif link and text in ("现场图片", "打开案件"):
            rows.append(f"[{text}]({link})")
        elif link:
            rows.append(f"{text} [地图]({link})")
        else:
            rows.append(text)
    rows.append(f"<font color=\"comment\">推送 {push_id}</font>")
    return "\n\n".join(rows)


def render(fmt: str, n: CaseNotice, push_id: str, map_link: str | None, *, mention: bool = True) -> dict[str, Any]:
    """The JSON body for one target (unsigned)."""
    if fmt == "wecom":
        content = _markdown(n, map_link, push_id)
        if mention and n.responsible_phone:
            content += f"\n\n请责任人 {n.responsible_name or ''} 处理"
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if fmt == "dingtalk":
        text = _markdown(n, map_link, push_id).replace('<font color="comment">', "").replace("</font>", "")
        at: dict[str, Any] = {"isAtAll": False}
        if mention and n.responsible_phone:
            at["atMobiles"] = [n.responsible_phone]
            text += f"\n\n@{n.responsible_phone}"
        return {"msgtype": "markdown", "markdown": {"title": f"minewatch {EVENT_TITLE.get(n.event, n.event)}",
                                                    "text": text}, "at": at}
    if fmt == "feishu":
        lines = _lines(n, map_link)
        post: list[list[dict[str, str]]] = []
        for text, link in lines[1:]:
            if link and text in ("现场图片", "打开案件"):
                post.append([{"tag": "a", "text": text, "href": link}])
            elif link:
                post.append([{"tag": "text", "text": text + " "}, {"tag": "a", "text": "地图", "href": link}])
            else:
                post.append([{"tag": "text", "text": text}])
        post.append([{"tag": "text", "text": f"推送 {push_id}"}])
        return {"msg_type": "post", "content": {"post": {"zh_cn": {"title": lines[0][0], "content": post}}}}
    return {"id": push_id, "type": n.event, "level": n.level, "case": n.to_json(), "map_url": map_url(n, map_link),
            "text": "\n".join(t for t, _ in _lines(n, map_link))}


def sign(fmt: str, url: str, body: dict[str, Any], secret: str | None, now_s: float) -> tuple[str, bytes]:
    """(URL, body bytes) ready to POST, signed when the target has a secret."""
    if secret and fmt == "dingtalk":
        ts = str(int(now_s * 1000))
        digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        sep = "&" if "?" in url else "?"
        url = url + sep + urlencode({"timestamp": ts, "sign": base64.b64encode(digest).decode()})
    elif secret and fmt == "feishu":
        ts = str(int(now_s))
        digest = hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()
        body = {"timestamp": ts, "sign": base64.b64encode(digest).decode(), **body}
    return url, json.dumps(body, ensure_ascii=False).encode()


def delivered(fmt: str, status: int, body: bytes) -> tuple[bool, str]:
    """(arrived, why not) from the HTTP status and the answer's body."""
    if not 200 <= status < 300:
        return False, f"HTTP {status}"
    if fmt == "json":
        return True, ""
    try:
        data = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False, f"HTTP {status} with a body that is not JSON"
    if not isinstance(data, dict):
        return False, "an answer that is not a JSON object"
    if fmt in ("wecom", "dingtalk"):
        code, msg = data.get("errcode"), data.get("errmsg")
    else:
        code = data.get("code", data.get("StatusCode"))
        msg = data.get("msg", data.get("StatusMessage"))
    if code == 0:
        return True, ""
    return False, f"robot refused: code {code} {str(msg)[:80]}"
