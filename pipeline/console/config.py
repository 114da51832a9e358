"""``console.yaml`` as pydantic v2 models (``extra="forbid"``, a description and bounds on every field).

``load_console_config`` turns any mistake into a one-line :class:`~pipeline.errors.UserError`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import TlsConfig, read_secret, read_yaml, validation_error_to_user_error
from pipeline.console.clues import FusionConfig
from pipeline.errors import UserError

PersonalData = Literal["show", "mask", "hide"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConsoleMqttConfig(Strict):
    """The broker (or broker cluster) the edge boxes publish to."""

    host: str = Field(default="localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port (8883 is usual for TLS).")
    topic_prefix: str = Field(
        default="minewatch",
        pattern=r"^[A-Za-z0-9_/-]{1,100}$",
        description="First topic level(s), as on the edge boxes.",
    )
    box_ids: list[str] = Field(
        default_factory=lambda: ["+"],
        min_length=1,
        description="Edge boxes to follow; ['+'] follows every box under the prefix.",
    )
    share_group: str | None = Field(
        default="minewatch-console",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT 5 shared-subscription group: consoles in one group split the alerts between them"
        " (each alert reaches one of them). None subscribes plainly (every console gets every alert).",
    )
    client_id: str | None = Field(
        default=None,
        max_length=128,
        description="MQTT client id; must be unique per console instance and stable across its restarts"
        " (the broker keeps the session under it). Default minewatch-console-<hostname>.",
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        le=0xFFFFFFFE,
        description="How long the broker keeps this console's session (and queues alerts) while it is away."
        " Too low: alerts published during a long outage are lost to this console; too high: a console"
        " retired for good leaves a queue on the broker until it expires.",
    )
    keepalive_s: int = Field(
        default=30, ge=5, le=3600, description="MQTT keepalive; too high detects a dead link late."
    )
    reconnect_max_s: int = Field(
        default=10, ge=1, le=600, description="Longest wait between reconnection attempts. Too high: alerts come late."
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; None is plain TCP.")
    username: str | None = Field(default=None, max_length=256, description="Username, when the broker wants one.")
    password_env: str | None = Field(default=None, description="Name of the environment variable holding the password.")
    password_file: Path | None = Field(default=None, description="File whose first line is the password.")
    check_queue: bool = Field(
        default=True,
        description="Measure (once a day, kept in the register) whether the broker keeps a burst of 1050 QoS 1"
        " messages for an absent"
        " client (Mosquitto's default keeps 1000 and drops the rest) and warn on the page and in the log when it"
        " does not. False where the console may not publish (a broker ACL): the check then only says so.",
    )
    max_event_kib: int = Field(
        default=64,
        ge=4,
        le=4096,
        description="Largest event message stored (KiB); larger ones are quarantined. An edge box's event is"
        " 1-3 KiB. Too low: events with a large `extra` are quarantined; too high: a faulty or hostile publisher"
        " fills the register.",
    )
    max_snapshot_kib: int = Field(
        default=4096,
        ge=64,
        le=65536,
        description="Largest snapshot JPEG stored (KiB); larger ones are quarantined. A 1080p snapshot at quality"
        " 85 is 0.2-0.6 MiB. Too low: 4K snapshots are quarantined; too high: a faulty or hostile publisher"
        " fills the register.",
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> ConsoleMqttConfig:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        for box in self.box_ids:
            if box != "+" and not all(c.isalnum() or c in "_-" for c in box):
                raise ValueError(f"box id {box!r} must be '+' or letters, digits, '_' and '-'")
        return self

    def effective_client_id(self) -> str:
        return self.client_id or f"minewatch-console-{socket.gethostname()}"[:128]

    def password(self) -> str | None:
        """Read the password from its environment variable or file (never from the config itself)."""
        return read_secret("console mqtt", self.password_env, self.password_file)


class TowerConfig(Strict):
    """A tower camera drawn on the map before (or without) any alert from it."""

    id: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Camera id, as in the box's cameras.yaml.")
    name: str = Field(default="", max_length=200, description="Name shown on the map.")
    lat: float = Field(..., ge=-90, le=90, description="Tower latitude, WGS84 degrees.")
    lon: float = Field(..., ge=-180, le=180, description="Tower longitude, WGS84 degrees.")
    pan_deg: float = Field(default=0.0, ge=-360, le=360, description="Heading of the view, clockwise from north.")
    hfov_deg: float = Field(
        default=60.0, gt=0.5, le=360, description="Horizontal field of view (360 for a full patrol)."
    )


class BoxConfig(Strict):
    """One edge box: where its zones and towers are, for the map."""

    id: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The box's id (mqtt.box_id on the box).")
    name: str = Field(default="", max_length=200, description="Name shown to operators.")
    zones: list[Path] = Field(
        default_factory=list, description="The box's zone GeoJSON files or folders of them (WGS84)."
    )
    cameras_config: Path | None = Field(
        default=None, description="The box's cameras.yaml; its cameras are drawn as towers with their view sectors."
    )
    towers: list[TowerConfig] = Field(default_factory=list, description="Towers given here instead.")


class TileLayerConfig(Strict):
    """An optional background map. Off by default: the page works offline with vector layers only."""

    url: str = Field(
        ...,
        min_length=8,
        max_length=1000,
        description="Leaflet URL template, e.g. http://tiles.local/{z}/{x}/{y}.png (Web Mercator).",
    )
    attribution: str = Field(default="", max_length=500, description="Attribution text shown on the map.")
    max_zoom: int = Field(default=18, ge=1, le=22, description="Deepest zoom level the tile server has.")
    datum: Literal["wgs84", "gcj02"] = Field(
        default="wgs84",
        description="Coordinates of the tiles: wgs84 (OpenStreetMap, Tianditu, a local server) or gcj02 (AMap,"
        " Tencent). With gcj02 the console shifts zones, towers and alerts onto the tiles; wrong here puts"
        " everything 100–700 m off.",
    )


class HillshadeConfig(Strict):
    """An offline base map: the county DEM (the boxes' terrain.dem_path GeoTIFF) shaded as relief, drawn when no
    tile layer is configured, with the zones' and towers' names on it."""

    dem_path: Path = Field(..., description="The DEM GeoTIFF (any CRS, north-up), as terrain.dem_path on the boxes.")
    max_side_px: int = Field(
        default=2048,
        ge=64,
        le=8192,
        description="Longest side of the shaded image. Too low: a blurred relief at zoom 14+; too high: a slower"
        " console start (about 1 s per 4 M pixels) and a larger image for every page (a few MB at 4096).",
    )
    azimuth_deg: float = Field(
        default=315.0, ge=0, lt=360, description="Where the light comes from, clockwise from north (315 = NW:"
        " the usual; from the south, valleys read as ridges)."
    )
    altitude_deg: float = Field(
        default=45.0, gt=0, le=90, description="Sun height above the horizon. Low: strong relief, flat land dark;"
        " 90: slopes hardly visible."
    )


class WebConfig(Strict):
    host: str = Field(default="127.0.0.1", min_length=1, description="Address the web server listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the web server.")
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="An operator stays logged in this long (a shift plus some)."
    )
    secure_cookies: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (set True behind a TLS proxy)."
    )
    poll_s: float = Field(
        default=1.0,
        ge=0.1,
        le=60,
        description="How often the live stream checks the register for changes. Too low: database load per"
        " open page; too high: alerts and other operators' changes show up late.",
    )
    tile_layer: TileLayerConfig | None = Field(default=None, description="Background tiles; None draws vectors only.")
    hillshade: HillshadeConfig | None = Field(
        default=None, description="Offline base map from the DEM, used when tile_layer is not set."
    )
    mbtiles_path: Path | None = Field(
        default=None, description="A local MBTiles file (Web Mercator, WGS84) served as the base map when"
        " tile_layer is not set; drawn instead of the hillshade."
    )
    sector_range_m: float = Field(
        default=5000.0, ge=100, le=100000, description="Length of a tower's view sector on the map, metres."
    )
    title: str = Field(default="minewatch 控制室 control room", max_length=200, description="Page title.")


class PrivacyConfig(Strict):
    """Personal data of the grid supervisors (zone responsibles, people named in case steps)."""

    notice: PersonalData = Field(
        default="mask", description="On the public notice page (公示): show, mask (张*, 138****5678) or hide."
    )
    csv: PersonalData = Field(default="show", description="In the CSV export of the case register.")


class ConsoleConfig(Strict):
    """The whole of ``console.yaml``."""

    database_url: str = Field(
        default="sqlite:///var/console.sqlite",
        min_length=10,
        description="sqlite:///relative/or/absolute.db (tested) or postgresql://user@host/db (needs the"
        " `postgres` extra; consoles that share a subscription must share this register).",
    )
    mqtt: ConsoleMqttConfig = Field(default_factory=lambda: ConsoleMqttConfig(), description="The broker.")
    boxes: list[BoxConfig] = Field(default_factory=list, description="Edge boxes whose zones/towers to draw.")
    web: WebConfig = Field(default_factory=lambda: WebConfig(), description="The web page.")
    privacy: PrivacyConfig = Field(default_factory=lambda: PrivacyConfig(), description="Personal data in exports.")
    fusion: FusionConfig = Field(default_factory=lambda: FusionConfig(), description="Clues linked into cases.")
    timezone: str = Field(
        default="Asia/Shanghai",
        max_length=64,
        description="IANA time zone of the public notice's dates (the page uses the browser's; the CSV is UTC).",
    )
    authority: str = Field(
        default="",
        max_length=200,
        description="Name of the bureau printed on the public notice, e.g. 某某县自然资源局.",
    )

    @model_validator(mode="after")
    def _check(self) -> ConsoleConfig:
        if not self.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("database_url must start with sqlite:/// or postgresql://")
        if url_has_password(self.database_url):
            raise ValueError("database_url must not hold a password: use PGPASSWORD or ~/.pgpass (libpq reads them)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone such as Asia/Shanghai") from None
        ids = [b.id for b in self.boxes]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate box id in boxes")
        return self


def url_has_password(url: str) -> bool:
    """True for postgresql://user:secret@host/…, which would put a secret in a file or on a command line."""
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def _resolve(config: ConsoleConfig, base: Path) -> None:
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    if config.database_url.startswith("sqlite:///"):
        db = Path(config.database_url.removeprefix("sqlite:///"))
        object.__setattr__(config, "database_url", f"sqlite:///{fix(db)}")
    if config.fusion.push_config is not None:
        object.__setattr__(config.fusion, "push_config", fix(config.fusion.push_config))
    for box in config.boxes:
        object.__setattr__(box, "zones", [fix(p) for p in box.zones])
        if box.cameras_config is not None:
            object.__setattr__(box, "cameras_config", fix(box.cameras_config))
    if config.web.hillshade is not None:
        object.__setattr__(config.web.hillshade, "dem_path", fix(config.web.hillshade.dem_path))
    if config.web.mbtiles_path is not None:
        object.__setattr__(config.web, "mbtiles_path", fix(config.web.mbtiles_path))
    m = config.mqtt
    if m.password_file is not None:
        object.__setattr__(m, "password_file", fix(m.password_file))
    if m.tls is not None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(m.tls, name)
            if value is not None:
                object.__setattr__(m.tls, name, fix(value))


def load_console_config(path: str | Path) -> ConsoleConfig:
    """Read, validate and resolve ``console.yaml``; raises :class:`UserError` on any mistake."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(str(path), None, "a mapping (database_url:, mqtt:, boxes:, web:)", type(data).__name__)
    try:
        config = ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_user_error(str(path), exc, data, ConsoleConfig) from None
    _resolve(config, path.resolve().parent)
    return config
