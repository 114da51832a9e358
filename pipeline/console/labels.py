"""Chinese names of what operators read: classes, rules and zone kinds (the page shows "中文 english", the
public notice only the Chinese). A name missing here is shown as it comes (a newer edge box's class, say)."""

from __future__ import annotations

CLASS_LABELS_ZH: dict[str, str] = {
    "excavator": "挖掘机",
    "truck": "运输车辆",
    "fire": "明火",
    "smoke": "烟雾",
    "person": "人员",
}
RULE_LABELS_ZH: dict[str, str] = {
    "closed_mine": "关闭矿区内作业",
    "illegal_site": "非法采矿点作业",
    "beyond_boundary": "越界开采",
    "fire_watch": "防火区火情",
    "fire_in_view": "视野内火情",
}
ZONE_KIND_LABELS_ZH: dict[str, str] = {
    "closed_mine": "关闭矿区",
    "illegal_site": "非法采矿点",
    "licensed_area": "许可开采区",
    "fire_watch": "防火区",
    "view": "视野",
}


def zh(labels: dict[str, str], name: str | None) -> str:
    """The Chinese name, or the name itself when there is none."""
    return labels.get(name or "", name or "")
