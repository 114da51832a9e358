"""``push.yaml``: webhook targets, routes by township and zone kind with escalation levels, delivery knobs.

Webhook URLs of group robots carry their access key, so they come from an environment variable or a file
(``url_env`` / ``url_file``), like every other secret; ``url`` is for keyless endpoints only (a local SMS
gateway). Every URL and signing secret is registered for redaction: no log line shows one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import read_yaml, validation_error_to_user_error
from pipeline.errors import UserError
from pipeline.redact import register_secret

Format = Literal["wecom", "dingtalk", "feishu", "json"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetConfig(Strict):
    """One recipient: a group robot or a JSON webhook."""

    id: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Name used by routes and in logs.")
    format: Format = Field(..., description="wecom, dingtalk, feishu (group robots) or json (generic webhook).")
    url: str | None = Field(None, description="Endpoint without a secret in it (a local gateway).")
    url_env: str | None = Field(None, description="Environment variable holding the URL (robot URLs carry a key).")
    url_file: Path | None = Field(None, description="File whose first line is the URL.")
    secret_env: str | None = Field(
        None, description="Environment variable with the robot's signing secret (DingTalk 加签, Feishu 签名校验).")
    secret_file: Path | None = Field(None, description="File whose first line is the signing secret.")
    mention_responsible: bool = Field(
        True, description="DingTalk: @ the responsible person's phone number; WeCom text: mention it.")

    @model_validator(mode="after")
    def _one_url(self) -> TargetConfig:
        given = [x for x in (self.url, self.url_env, self.url_file) if x]
        if len(given) != 1:
            raise ValueError("exactly one of url, url_env, url_file")
        return self


class LevelConfig(Strict):
    """One step of an escalation chain."""

    after_minutes: float = Field(
        0.0, ge=0.0, le=7 * 24 * 60,
        description="Minutes after the previous level without acknowledgement before this level is pushed"
        " (0 for the first level). Too low: supervisors are woken for cases an operator is about to take;"
        " too high: an unattended case waits that long for the next person.")
    targets: list[str] = Field(..., min_length=1, description="Target ids pushed at this level.")


class RouteConfig(Strict):
    """Which cases go where: empty lists match everything."""

    townships: list[str] = Field(default_factory=list, description="Townships (乡镇) this route covers; [] = all.")
    zone_kinds: list[str] = Field(default_factory=list, description="Zone kinds this route covers; [] = all.")
    min_priority: int = Field(0, ge=0, le=100, description="Only cases at or above this priority.")
    levels: list[LevelConfig] = Field(..., min_length=1, max_length=8,
                                      description="Escalation chain: level 0 at once, then each after its delay.")


class PushConfig(Strict):
    targets: list[TargetConfig] = Field(..., min_length=1, description="Recipients.")
    routes: list[RouteConfig] = Field(..., min_length=1, description="Routing by township and zone kind.")
    outbox_path: Path = Field(Path("var/push.sqlite"), description="Durable outbox (SQLite).")
    timeout_s: float = Field(
        10.0, gt=0.0, le=120.0,
        description="HTTP timeout of one push. Too low: a slow robot API counts as down (duplicates when the"
        " push did arrive); too high: one hung endpoint delays the others.")
    retry_min_s: float = Field(
        5.0, gt=0.0, le=3600.0,
        description="First retry delay, doubled at each failure. Too low: a down endpoint is hammered (and"
        " robots rate-limit: 20 messages a minute); too high: pushes arrive late after a short outage.")
    retry_max_s: float = Field(
        120.0, gt=0.0, le=86400.0,
        description="Longest retry delay. Too low: hammering during a long outage; too high: after an outage"
        " ends, pushes wait up to this long.")
    map_link: str | None = Field(
        "https://uri.amap.com/marker?position={lon},{lat}&coordinate=wgs84&name={name}&callnative=0",
        description="Map link template ({lat}, {lon} in WGS84, {name}); null for none (offline networks).")
    console_url: str | None = Field(
        None, description="Base URL of the console, for the case and snapshot links (e.g. https://mw.example/).")
    sent_keep_days: float = Field(90.0, ge=1.0, le=3650.0,
                                  description="How long the ids of delivered pushes are kept against repeats.")

    @model_validator(mode="after")
    def _refs(self) -> PushConfig:
        ids = [t.id for t in self.targets]
        if len(set(ids)) != len(ids):
            raise ValueError("target ids must be unique")
        for r in self.routes:
            for lv in r.levels:
                for t in lv.targets:
                    if t not in ids:
                        raise ValueError(f"route target {t!r} is not among the targets {ids}")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be at least retry_min_s")
        return self


def _read_first_line(path: Path, source: str, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise UserError(str(path), f"{source}.{field}", "a readable file with one line", type(exc).__name__) from None


def resolve_url(t: TargetConfig, base: Path) -> str:
    import os

    if t.url:
        url = t.url
    elif t.url_env:
        got = os.environ.get(t.url_env)
        if not got:
            raise UserError(f"targets[{t.id}]", "url_env", f"environment variable {t.url_env} set", "unset")
        url = got.strip()
    else:
        assert t.url_file is not None
        url = _read_first_line(t.url_file if t.url_file.is_absolute() else base / t.url_file,
                               f"targets[{t.id}]", "url_file")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"targets[{t.id}]", "url", "an http(s) URL", "something else (not shown: it may hold a key)")
    register_secret(url)
    if parts.query:
        register_secret(parts.query)
    return url


def resolve_secret(t: TargetConfig, base: Path) -> str | None:
    import os

    secret: str | None = None
    if t.secret_env:
        secret = os.environ.get(t.secret_env)
        if not secret:
            raise UserError(f"targets[{t.id}]", "secret_env", f"environment variable {t.secret_env} set", "unset")
    elif t.secret_file:
        secret = _read_first_line(t.secret_file if t.secret_file.is_absolute() else base / t.secret_file,
                                  f"targets[{t.id}]", "secret_file")
    register_secret(secret)
    return secret


def load_push_config(path: Path) -> PushConfig:
    data = read_yaml(path)
    try:
        cfg = PushConfig.model_validate(data or {})
    except ValidationError as exc:
        raise validation_error_to_user_error(str(path), exc, data) from None
    if not cfg.outbox_path.is_absolute():
        cfg.outbox_path = path.parent / cfg.outbox_path
    return cfg
