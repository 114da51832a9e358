"""``cameras.yaml`` as pydantic v2 models.

Every field has a description, bounds and its unit in its name. Relative paths
are resolved against the folder of the config file. ``load_config`` turns any
mistake into a one-line :class:`~pipeline.errors.UserError` (exit code 2).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import UserError
from pipeline.redact import redact_url, register_secret
from pipeline.smoke.config import SmokeConfig
from pipeline.types import CLASSES, ClassName


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

def read_secret(section: str, password_env: str | None, password_file: Path | None) -> str | None:
    """A password from the environment variable or the file a config names (never from the config itself).

    The secret is registered for redaction, so that no log line or error can show it.
    """
    secret: str | None = None
    if password_env:
        secret = os.environ.get(password_env)
        if secret is None:
            raise UserError(section, "password_env", f"environment variable {password_env} set", "unset")
    elif password_file:
        try:
            secret = password_file.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise UserError(str(password_file), f"{section}.password_file", "a readable file", exc) from None
    register_secret(secret)
    return secret



class PoseSigma(Strict):
    """How well the camera's pose is known (1 σ); drives the uncertainty ellipse of every fix."""

    pan_deg: float = Field(0.1, ge=0, le=10, description="1 σ error of the reported pan angle.")
    tilt_deg: float = Field(0.1, ge=0, le=10, description="1 σ error of the reported tilt angle.")
    pixel_px: float = Field(
        2.0, ge=0, le=100, description="1 σ error of a box's bottom edge in pixels (box jitter, occlusion)."
    )
    height_m: float = Field(
        1.0,
        ge=0,
        le=100,
        description="1 σ error of the camera's height above sea level (ground_elevation_m + mast_height_m): ~0.3"
        " for a surveyed (GNSS) tower, 1 from drawings, 5–10 when the foot's elevation is read off a map or"
        " DEM. Too low: ellipses too short at grazing angles (a 1 m error unaccounted drops the 90 % ellipse's"
        " coverage to ~78 %); too high: needlessly long ellipses. docs/GEO.md says how to choose it.",
    )


class ReaderConfig(Strict):
    """How a camera's stream is read: timeouts, the stall watchdog, reconnection and decoding."""

    open_timeout_s: float = Field(
        10.0, ge=0.5, le=120, description="Longest wait to open the stream. Too low: a slow link never connects."
    )
    stall_s: float = Field(
        5.0,
        ge=0.5,
        le=600,
        description="No decoded frame for this long: the camera is `stalled` and the reader reconnects. Too low:"
        " a slow link (or a long key-frame interval in key-frame mode) flaps; too high: a frozen camera goes"
        " unnoticed that long.",
    )
    backoff_initial_s: float = Field(
        0.5, ge=0.05, le=60, description="First wait before reconnecting; doubles after each failed attempt."
    )
    backoff_max_s: float = Field(
        30.0,
        ge=0.1,
        le=3600,
        description="Cap of the reconnection wait. Too low: a dead camera is hammered; too high: a camera"
        " that comes back is picked up late.",
    )
    decode_mode: Literal["auto", "all", "keyframes"] = Field(
        "auto",
        description="`keyframes` decodes key frames only (skip_frame=NONKEY): 10–30× cheaper, but frames come"
        " only at the key-frame interval. `auto` switches to it when key frames arrive at least as often as"
        " analysis_fps asks and the stream runs at ≥ 4× analysis_fps.",
    )
    decode_threads: int = Field(
        1,
        ge=0,
        le=16,
        description="Codec threads per camera (0: one per core). More: a big stream decoded at full rate keeps"
        " up; but each thread adds latency and memory, and on a many-camera box one thread each is cheapest."
        " Key frames only (decode_mode keyframes) always decode on one thread: FFmpeg's slice threads do not"
        " report the frames they had to conceal.",
    )
    degraded_clear_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="A camera whose decoder had to conceal damaged data is `degraded` (its concealed frames are"
        " never analysed) until this long passes without another. Too low: the status flaps on a link that"
        " breaks every few seconds; too high: a repaired link stays flagged long after.",
    )
    max_clock_skew_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Capture times follow the stream's timestamps, pinned to this box's clock; a frame that"
        " arrives later than its timestamp says by more than this re-pins them. Too low: network jitter"
        " re-pins often (uneven times); too high: after a pts jump times are off by up to this much.",
    )


class PresetConfig(Strict):
    """One stop of a patrol tour: where the camera points, how long it settles, how long it stays."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Preset name, carried by every frame.")
    pan_deg: float = Field(..., ge=-360, le=360, description="Azimuth of the optical axis, clockwise from north.")
    tilt_deg: float = Field(0.0, ge=-90, le=90, description="Elevation of the optical axis; negative looks down.")
    hfov_deg: float | None = Field(
        None, gt=0.5, lt=180, description="Horizontal field of view at this preset's zoom; None: the camera's."
    )
    zoom: float | None = Field(
        None, ge=0, le=1, description="ONVIF zoom position (normalised 0–1); None leaves the zoom alone."
    )
    onvif_preset_token: str | None = Field(
        None, max_length=64, description="Move with GotoPreset to this camera preset instead of AbsoluteMove."
    )
    settle_s: float = Field(
        2.0,
        ge=0,
        le=120,
        description="Frames are not analysed for this long after the move ends. Too low: blurred frames and"
        " autofocus hunting reach the detector; too high: less time watching.",
    )
    dwell_s: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="Time analysed at this preset. Too low: a preset is not watched long enough to confirm an"
        " event; too high: the other presets are visited rarely.",
    )
    reference_image: Path | None = Field(
        None, description="Image of the correct view at this preset; the view check compares against it."
    )


class LookConfig(Strict):
    """Look closer (docs/PATROL.md): a patrolling camera leaves its tour for one zoomed look at an uncertain
    candidate in a zone, then resumes the tour where it was."""

    enabled: bool = Field(False, description="Interrupt the tour to look closer at uncertain candidates in zones.")
    look_score: float = Field(
        0.1,
        ge=0.01,
        le=0.99,
        description="A detection scoring at least this (and below its class's alert threshold) in a zone that"
        " its class triggers is a candidate. Too low: the camera leaves its tour for noise (up to max_per_tour"
        " times a tour); too high: faint distant machines are never looked at.",
    )
    small_box_px: float = Field(
        0.0,
        ge=0,
        le=2000,
        description="A detection above its alert threshold whose box is lower than this (pixels) is also a"
        " candidate (the zoomed look locates it better and shows what it is). 0: only low scores. Too high:"
        " every alert costs a look; too low: tiny alerts keep their coarse location.",
    )
    target_box_px: float = Field(
        120.0,
        ge=16,
        le=4000,
        description="Box height wanted after zooming (pixels). Too low: the detector still sees too few pixels"
        " to decide; too high: the object overfills the view and a small pointing error loses it.",
    )
    min_hfov_deg: float = Field(
        1.0,
        ge=0.6,
        lt=180,
        description="Narrowest field of view a look zooms to (degrees; also never narrower than the zoom_hfov"
        " table's narrowest). Too low"
        " for the lens: the view is wider than planned (the box stays small); too high: far candidates stay"
        " small.",
    )
    settle_s: float = Field(
        1.5,
        ge=0,
        le=60,
        description="Wait after the look's move ends before frames count. Too low: blurred frames while the"
        " zoom and focus still move; too high: the tour waits longer for every look.",
    )
    frames: int = Field(
        5,
        ge=1,
        le=100,
        description="Frames analysed at the look before it is rejected (at least alerts.confirm_hits are used)."
        " Too low: a true machine is rejected before its track is confirmed; too high: the tour waits longer"
        " on false candidates.",
    )
    max_dwell_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Longest time a look stays, whatever was analysed (the detector may fall behind). Too low:"
        " looks end before enough frames; too high: a stalled stream holds the tour that long.",
    )
    max_per_tour: int = Field(
        1,
        ge=0,
        le=100,
        description="Looks allowed per tour of the presets. Too low: candidates wait for the next tour; too"
        " high: a scene full of doubtful detections stretches the tour and its presets are watched less.",
    )
    cooldown_s: float = Field(
        600.0,
        ge=0,
        le=86400,
        description="No second look near a place looked at within this time. Too low: the same false"
        " candidate costs a look every tour; too high: a machine that arrives where a look found nothing"
        " waits that long for its look.",
    )
    cooldown_radius_m: float = Field(
        50.0,
        ge=0,
        le=10000,
        description="How near (metres, or cooldown_deg of bearing without a ground fix) counts as the same"
        " place for the cooldown. Too low: one false candidate is looked at repeatedly; too high: nearby"
        " candidates are skipped.",
    )
    cooldown_deg: float = Field(1.0, ge=0, le=180, description="Bearing difference that counts as the same"
                                " place for candidates without a ground fix.")


class PatrolConfig(Strict):
    """A preset tour. A camera without one is fixed: a tour of one preset at its pan/tilt/hfov."""

    driver: Literal["onvif", "simulated"] = Field(
        "onvif", description="`onvif` moves a real camera (needs `onvif:`); `simulated` only times moves (tests)."
    )
    presets: Annotated[list[PresetConfig], Field(min_length=1, max_length=256)] = Field(
        ..., description="The tour, visited in order and then again from the first."
    )
    move_timeout_s: float = Field(
        30.0, ge=1, le=600, description="A move that has not ended after this long is given up (logged)."
    )
    simulated_speed_deg_s: float = Field(
        60.0, gt=0, le=1000, description="Simulated driver only: pan/tilt speed used to time moves."
    )
    look: LookConfig = Field(default_factory=LookConfig, description="Look closer at uncertain candidates.")


class OnvifConfig(Strict):
    """The camera's ONVIF service, used to move it through its patrol tour."""

    host: str = Field(..., min_length=1, max_length=253, description="Camera host name or address.")
    port: int = Field(80, ge=1, le=65535, description="ONVIF HTTP port.")
    username: str | None = Field(None, max_length=256, description="ONVIF user.")
    password_env: str | None = Field(None, description="Name of the environment variable holding the password.")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    profile_token: str | None = Field(None, max_length=64, description="Media profile; None: the first one.")
    pan_zero_azimuth_deg: float = Field(
        0.0, ge=-360, le=360, description="Azimuth (clockwise from north) the camera faces at its own pan 0°."
    )
    pan_deg_at_minus1: float = Field(
        -180.0, ge=-360, le=360, description="Camera pan (degrees) at ONVIF generic-space x = −1."
    )
    pan_deg_at_plus1: float = Field(180.0, ge=-360, le=360, description="Camera pan (degrees) at x = +1.")
    tilt_deg_at_minus1: float = Field(
        -90.0, ge=-180, le=180, description="Camera tilt (degrees, up positive) at ONVIF generic-space y = −1."
    )
    tilt_deg_at_plus1: float = Field(90.0, ge=-180, le=180, description="Camera tilt (degrees) at y = +1.")
    blind_move_s: float = Field(
        5.0,
        ge=0,
        le=120,
        description="For cameras whose GetStatus fails: a move is taken to last this long. Too low: frames"
        " taken while still moving are analysed with the new pose; too high: watching time lost per preset.",
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> OnvifConfig:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.pan_deg_at_minus1 == self.pan_deg_at_plus1 or self.tilt_deg_at_minus1 == self.tilt_deg_at_plus1:
            raise ValueError("the ONVIF pan/tilt ranges must not be empty")
        return self

    def password(self) -> str | None:
        """Read the password from its environment variable or file (never from the config itself)."""
        return read_secret("onvif", self.password_env, self.password_file)


class ViewCheckConfig(Strict):
    """Is the camera looking where its preset says? ORB features of the view against a reference image."""

    min_inliers: int = Field(
        12,
        ge=4,
        le=1000,
        description="Feature matches that must agree on one homography. Too low: a wrong view can pass; too"
        " high: haze, night or seasons fail a correct view.",
    )
    max_shift_deg: float = Field(
        3.0,
        gt=0,
        le=90,
        description="Largest offset of the view's centre from the reference's, degrees. Too low: normal"
        " preset repeatability fails; too high: a turned camera passes and locations are off by that much.",
    )
    recheck_s: float = Field(
        5.0, ge=0.2, le=3600, description="While a view does not match, how often to look again."
    )
    verify_s: float = Field(
        60.0,
        ge=1,
        le=86400,
        description="While a view matches, how often to check it again (a fixed camera can be turned at any"
        " time). Too low: CPU spent on feature matching; too high: a turned camera is analysed that long.",
    )


class TilingConfig(Strict):
    """Tiled inference for small, distant objects: overlapping tiles at full resolution, boxes merged.

    Costs one inference per tile (plus one for the whole frame): a 1920×1080 frame with 640 px tiles
    and 0.2 overlap is 8 tiles + 1, about 9× the detector time of an untiled frame.
    """

    tile_px: int = Field(
        640,
        ge=64,
        le=8192,
        description="Side of a square tile in frame pixels. Too small: many tiles (cost) and large objects cut"
        " apart; too large: small objects shrink again in the network input.",
    )
    overlap_frac: float = Field(
        0.2,
        ge=0.0,
        le=0.75,
        description="Overlap between neighbouring tiles. Too low: an object on a tile edge is cut in two;"
        " too high: more tiles for nothing.",
    )
    include_full_frame: bool = Field(
        True, description="Also run the whole frame, so that objects larger than a tile are found whole."
    )
    zones_only: bool = Field(
        False,
        description="Run only the tiles where a key zone lies in the view (its outline projected with the"
        " camera pose over the terrain, grown by zone_margin_px); the rest of the frame is seen by the whole-frame"
        " pass only. Needs zones; a zone partly behind the camera runs every tile. True: small objects outside"
        " every zone (a distant fire, with fire_anywhere) are found only if big enough for the whole-frame pass;"
        " False: every tile of every frame (cost).",
    )
    zone_margin_px: int = Field(
        96,
        ge=0,
        le=2048,
        description="Frame pixels the projected zones are grown by before choosing tiles. Too low: a machine"
        " on a zone's edge (its box rises above its foot) or a pose error of a few pixels falls outside every"
        " tile run; too high: tiles run for nothing.",
    )


class CameraConfig(Strict):
    """One tower camera: where it stands, where it points, and how often to analyse it."""

    id: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Stable id; used in MQTT topics.")
    name: str = Field("", max_length=200, description="Human-readable name shown to operators.")
    source: str = Field(..., min_length=1, description="An rtsp:// URL or the path of a recorded video file.")
    realtime: bool = Field(
        True, description="Recorded files only: pace frames at their own rate (True) or as fast as possible."
    )
    loop: bool = Field(False, description="Recorded files only: start again at the end instead of stopping.")
    lat: float = Field(..., ge=-90, le=90, description="Tower latitude, WGS84 degrees.")
    lon: float = Field(..., ge=-180, le=180, description="Tower longitude, WGS84 degrees.")
    ground_elevation_m: float = Field(
        0.0, ge=-500, le=9000, description="Ground elevation at the tower's foot, metres above sea level."
    )
    mast_height_m: float = Field(
        20.0, ge=0, le=500, description="Height of the camera above the tower's foot, metres."
    )
    pan_deg: float = Field(0.0, ge=-360, le=360, description="Heading of the optical axis, clockwise from north.")
    tilt_deg: float = Field(0.0, ge=-90, le=90, description="Elevation of the optical axis; negative looks down.")
    roll_deg: float = Field(0.0, ge=-45, le=45, description="Roll of the image about the optical axis.")
    hfov_deg: float = Field(60.0, gt=0.5, lt=180, description="Horizontal field of view of the frames.")
    analysis_fps: float = Field(
        2.0,
        gt=0,
        le=60,
        description=(
            "Frames analysed per second. Too low: short events (a truck passing) are missed and confirmation"
            " takes longer; too high: the detector falls behind and frames go stale (dropped, counted)."
        ),
    )
    pose_sigma: PoseSigma = Field(default_factory=PoseSigma, description="Pose uncertainty (1 σ).")
    zoom_hfov: list[tuple[Annotated[float, Field(gt=0, le=1000)], Annotated[float, Field(gt=0.1, lt=180)]]] = Field(
        default_factory=list,
        description="(zoom, hfov_deg) calibration pairs of the lens, for PTZ heads that report zoom rather than"
        " field of view; interpolated linearly in focal length (1/tan(hfov/2)). Empty: the pose's hfov is used.",
    )
    distortion_k1: float = Field(
        0.0, ge=-1, le=1,
        description="Radial lens distortion k1 (OpenCV convention, normalised coordinates). Wrong sign or size:"
        " fixes near the image edges are pulled or pushed sideways and in range.",
    )
    distortion_k2: float = Field(0.0, ge=-1, le=1, description="Radial lens distortion k2 (OpenCV convention).")
    enabled: bool = Field(True, description="False keeps the camera in the file but does not open it.")
    reader: ReaderConfig = Field(default_factory=ReaderConfig, description="Stream reading and watchdog.")
    patrol: PatrolConfig | None = Field(None, description="Preset tour; None: a fixed camera (one preset).")
    onvif: OnvifConfig | None = Field(None, description="ONVIF PTZ service, for `patrol.driver: onvif`.")
    view_reference_path: Path | None = Field(
        None, description="Fixed cameras: image of the correct view, checked like a preset's reference_image."
    )
    view_check: ViewCheckConfig = Field(default_factory=ViewCheckConfig, description="Moved/stuck camera check.")
    tiling: TilingConfig | None = Field(
        None, description="Tiled inference for this camera (small distant objects); None: whole frames only."
    )

    @model_validator(mode="after")
    def _patrol_needs_driver(self) -> CameraConfig:
        if self.patrol is not None and self.patrol.driver == "onvif" and self.onvif is None:
            raise ValueError("patrol.driver onvif needs an `onvif:` section (host, credentials)")
        if (self.patrol is not None and self.patrol.look.enabled and self.patrol.driver == "onvif"
                and not self.zoom_hfov):
            raise ValueError("patrol.look through ONVIF needs zoom_hfov (the lens's zoom -> field of view table)")
        if self.patrol is not None and self.view_reference_path is not None:
            raise ValueError("with a patrol, give reference_image per preset, not view_reference_path")
        return self

    @property
    def is_rtsp(self) -> bool:
        return self.source.startswith(("rtsp://", "rtsps://"))

    @property
    def source_redacted(self) -> str:
        return redact_url(self.source)


class ScoreThresholds(Strict):
    """Minimum detector score per class. Too low: false alarms; too high: distant machines are missed."""

    default: float = Field(0.35, ge=0.01, le=0.99, description="Threshold for a class not listed here.")
    excavator: float | None = Field(None, ge=0.01, le=0.99, description="Threshold for excavators.")
    truck: float | None = Field(None, ge=0.01, le=0.99, description="Threshold for trucks.")
    fire: float | None = Field(None, ge=0.01, le=0.99, description="Threshold for fire.")
    smoke: float | None = Field(None, ge=0.01, le=0.99, description="Threshold for smoke.")
    person: float | None = Field(None, ge=0.01, le=0.99, description="Threshold for people.")

    def for_class(self, name: str) -> float:
        value = getattr(self, name, None)
        return float(self.default if value is None else value)

    def as_array(self) -> list[float]:
        return [self.for_class(c) for c in CLASSES]


ProviderName = Literal["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
_DEFAULT_PROVIDERS: tuple[ProviderName, ...] = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_DEFAULT_CLASS_MAP: dict[str, ClassName | None] = {
    "excavator": "excavator", "truck": "truck", "fire": "fire", "smoke": "smoke", "person": "person"}


class DetectorConfig(Strict):
    """The ONNX detector (any Ultralytics YOLOv8/YOLO11 detection export)."""

    model_path: Path = Field(Path("models/minewatch-starter.onnx"), description="ONNX model file.")
    input_size_px: int | None = Field(
        None,
        ge=32,
        le=4096,
        description="Square network input; None takes it from the model's metadata. Must be a multiple of the stride.",
    )
    providers: list[ProviderName] = Field(
        default_factory=lambda: list(_DEFAULT_PROVIDERS),
        min_length=1,
        description="onnxruntime execution providers in order of preference; unavailable ones are skipped and logged.",
    )
    score_threshold: ScoreThresholds = Field(default_factory=ScoreThresholds, description="Per-class thresholds.")
    iou_threshold: float = Field(
        0.45,
        ge=0.05,
        le=0.95,
        description="NMS overlap. Too low: machines side by side merge into one; too high: duplicate boxes.",
    )
    class_map: dict[str, ClassName | None] = Field(
        default_factory=lambda: dict(_DEFAULT_CLASS_MAP),
        description="Model class name → minewatch class (null drops it). Names not listed are dropped.",
    )
    rect_input: bool = Field(
        True,
        description="Pad each batch only to the next multiple of the model's stride (as Ultralytics' predict"
        " does), not to the full input_size_px square, when the model's input size is dynamic: a 16:9 frame"
        " at 320 runs on 320×192, 40 % fewer pixels, same detections. False: always the square (what a"
        " fixed-size export gets anyway). With TensorRT every new input shape (batch size or canvas) can"
        " cost an engine build the first time it is seen (cached afterwards); not measured here (no GPU).",
    )
    batch_max: int = Field(
        0,
        ge=0,
        le=64,
        description="Most frames per inference batch across cameras (a fixed-batch model pads). 0: 1 on the CPU"
        " provider, 8 on a GPU. Batches buy nothing per image on a CPU and every frame of a batch waits for the"
        " whole batch (2 cores, 4 cameras: frames 0.13 s old when analysed at 1, 0.47 s at 4); on a GPU too"
        " small a batch leaves the device idle between calls.",
    )
    batch_wait_ms: float = Field(
        20.0,
        ge=0,
        le=2000,
        description="Longest wait to fill a batch. Too low: small batches on a GPU; too high: staler frames.",
    )
    workers: int = Field(
        0,
        ge=0,
        le=16,
        description="Inference workers, each with its own onnxruntime session, taking batches in turn (results"
        " are analysed in the order the batches were formed). 0: one per CPU core (at most 4) on the CPU"
        " provider, 2 on a GPU. Too few: cores sit idle at every operator's barrier (one 2-thread session on"
        " 2 cores does 20 frames/s where two 1-thread sessions do 25); too many: each holds a copy of the"
        " model, and on a GPU more than 2 only add memory.",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="onnxruntime threads per worker; 0: the CPU cores shared out among the workers (1 each"
        " when there are as many workers as cores). Too high: workers preempt each other's threads and wait"
        " at barriers; too low: cores idle.",
    )


class TlsConfig(Strict):
    ca_file: Path | None = Field(None, description="CA certificate (PEM) that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM), for mutual TLS.")
    key_file: Path | None = Field(None, description="Client private key (PEM), for mutual TLS.")
    insecure: bool = Field(False, description="Skip hostname verification (tests only; never in production).")


class MqttConfig(Strict):
    """The broker that receives alerts. The password is never written here: only where to read it."""

    enabled: bool = Field(True, description="False keeps alerts in the outbox and the log only.")
    required: bool = Field(
        True, description="True: a missing broker is a fault (ERROR log lines, /health unhealthy, `doctor` fails)."
        " False: running without a broker is normal (the sample; a box whose control room is not yet set up):"
        " INFO lines say alerts wait in the outbox and `doctor` warns. False on a deployed box hides a dead"
        " uplink until the outbox fills.")
    host: str = Field("localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port (8883 is usual for TLS).")
    topic_prefix: str = Field("minewatch", pattern=r"^[A-Za-z0-9_/-]{1,100}$", description="First topic level(s).")
    box_id: str = Field(
        "edge-1", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="This edge box's id, the topic level after the prefix."
    )
    client_id: str | None = Field(None, max_length=128, description="MQTT client id; default minewatch-<box_id>.")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of events and snapshots. Use 1: at least once.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive; too high detects a dead link late.")
    tls: TlsConfig | None = Field(None, description="TLS settings; None is plain TCP.")
    username: str | None = Field(None, max_length=256, description="Username, when the broker wants one.")
    password_env: str | None = Field(None, description="Name of the environment variable holding the password.")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT protocol version. 5 gives PUBACK reason codes and snapshot user properties."
    )
    reconnect_min_s: float = Field(
        1.0, ge=0.05, le=600,
        description="First wait before reconnecting; doubled on each failure. Too low: a flapping link is"
        " hammered; too high: alerts wait longer after a short outage.",
    )
    reconnect_max_s: float = Field(
        60.0, ge=0.1, le=3600,
        description="Cap of the reconnect backoff. Too high: after a long outage alerts start flowing late;"
        " too low: many connection attempts against a broker that is down.",
    )
    inflight_window: int = Field(
        20, ge=1, le=1000,
        description="Outbox messages handed to the client awaiting PUBACK at once. Too low: a slow link drains"
        " the backlog slowly; too high: more duplicates are re-sent after a cut.",
    )
    connect_timeout_s: float = Field(
        10.0, ge=0.5, le=300, description="TCP/TLS connect timeout. Too low: slow 4G links never connect."
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttConfig:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s ≤ reconnect_max_s")
        return self

    def password(self) -> str | None:
        """Read the password from its environment variable or file (never from the config itself)."""
        return read_secret("mqtt", self.password_env, self.password_file)


class AlertsConfig(Strict):
    """How detections become alerts, and where alerts wait until the broker has them."""

    snapshot_dir: Path = Field(Path("var/snapshots"), description="Folder of alert snapshots (JPEG).")
    outbox_path: Path = Field(Path("var/outbox.sqlite"), description="SQLite outbox of alerts not yet acknowledged.")
    confirm_hits: int = Field(
        3,
        ge=1,
        le=100,
        description="An object must be seen in this many of the last confirm_window analysed frames."
        " Too low: one-frame false detections raise alerts; too high: alerts come late.",
    )
    confirm_window: int = Field(5, ge=1, le=200, description="Analysed frames looked back over for confirmation.")
    end_after_s: float = Field(
        30.0,
        ge=0.5,
        le=86400,
        description="An event ends after this long unseen. Too low: a flicker ends it and a new one starts.",
    )
    update_interval_s: float = Field(
        10.0, ge=0.5, le=86400, description="Least time between two `update` messages of one event."
    )
    snapshot_jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of snapshots.")
    print_alerts: bool = Field(True, description="Also log each alert event on the console.")
    outbox_max_messages: int = Field(
        100_000, ge=10, le=10_000_000,
        description="Most messages the outbox holds. When full, the oldest `update` messages (then snapshots)"
        " are dropped and counted; `new`/`end` events go only when nothing else is left. Too low: a long"
        " outage loses updates; too high: a long backlog floods the control room when the link returns.",
    )
    outbox_max_mb: float = Field(
        1024.0, ge=1, le=1_000_000,
        description="Most megabytes (event JSON + snapshot JPEGs) waiting in the outbox; same policy as"
        " outbox_max_messages. Too high: snapshots fill the disk during a long outage.",
    )
    snapshot_quota_mb: float = Field(
        2048.0, ge=1, le=10_000_000,
        description="Most megabytes of snapshots kept; the oldest go first (never one still waiting to be"
        " sent). Too high: the disk fills; too low: operators lose recent pictures.",
    )
    snapshot_max_age_days: float = Field(
        30.0, ge=0.01, le=3650, description="Snapshots older than this are deleted (unless still unsent)."
    )
    retention_interval_s: float = Field(
        600.0, ge=1, le=86400, description="How often snapshot retention runs. Too low: needless disk scans."
    )

    @model_validator(mode="after")
    def _hits_in_window(self) -> AlertsConfig:
        if self.confirm_hits > self.confirm_window:
            raise ValueError("confirm_hits ≤ confirm_window")
        return self


class TrackConfig(Strict):
    """ByteTrack-style tracking per camera and preset (pipeline/track); docs/ZONES.md explains it."""

    high_score: float = Field(
        0.35,
        ge=0.01,
        le=0.99,
        description="Detections at or above this start tracks and are matched first; those below it (down to the"
        " detector's threshold) only keep existing tracks alive. Too low: false detections start tracks; too"
        " high: faint distant machines never get a track. Lower the detector's thresholds to feed the low pass.",
    )
    match_iou: float = Field(
        0.2,
        ge=0.01,
        le=0.95,
        description="Least box overlap (IoU, after motion prediction) to continue a track with a high-score"
        " detection. Too low: neighbouring machines swap ids; too high: a moving truck gets a new id each frame.",
    )
    low_match_iou: float = Field(
        0.5, ge=0.01, le=0.95, description="Least IoU to continue a track with a low-score detection."
    )
    lost_frames: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Analysed frames of the same preset a track survives unseen. Too low: a flicker or a passing"
        " occlusion breaks the track; too high: a departed object's id is reused by a newcomer.",
    )
    lost_frames_stationary: int = Field(
        60,
        ge=1,
        le=100_000,
        description="The same for a stationary track (a parked machine), which may be hidden for longer.",
    )
    stationary_window: int = Field(
        6, ge=2, le=1000, description="Sightings looked back over to decide that a track is stationary."
    )
    stationary_move_frac: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="A track is stationary when its box centre moved less than this fraction of its box diagonal"
        " over stationary_window sightings. Too low: box jitter keeps a parked machine 'moving'; too high: a slow"
        " truck counts as parked.",
    )
    ground_smoothing: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="Weight of a new ground fix in a moving track's smoothed position (1 = no smoothing);"
        " stationary tracks average all their fixes. Too low: positions lag a moving truck; too high: jitter.",
    )


class ZonesConfig(Strict):
    """Geofences and the rules that turn located tracks into events (docs/ZONES.md)."""

    dir: Path = Field(Path("zones"), description="Folder of zone files (*.geojson, WGS84).")
    fire_anywhere: bool = Field(
        True, description="Raise fire and smoke alerts anywhere in view, not only inside fire_watch zones."
    )
    tz: str = Field(
        "Asia/Shanghai",
        min_length=1,
        max_length=64,
        description="IANA time zone of zone schedules and permit dates, unless a zone names its own.",
    )
    probability_threshold: float = Field(
        0.5,
        ge=0.01,
        le=0.99,
        description="Least probability (from the fix's uncertainty ellipse) that an object lies in a zone (or a"
        " licensed area's buffer band) to raise an alert. Too low: machines next to a zone raise alerts; too"
        " high: distant machines (large ellipses) inside a zone never do.",
    )
    probability_hysteresis: float = Field(
        0.15,
        ge=0.0,
        le=0.9,
        description="An open event keeps counting sightings while the probability stays above"
        " probability_threshold minus this. Too low: an object on the boundary ends and restarts its event.",
    )
    revisit_match_m: float = Field(
        100.0,
        ge=0.0,
        le=10_000.0,
        description="Sightings of one class in one zone closer than this (plus their 90 % ellipses) are one site:"
        " they continue one event across patrol revisits. Too low: a parked machine raises a new event every"
        " patrol cycle; too high: two machines in one large zone share one event.",
    )
    revisit_match_deg: float = Field(
        3.0,
        ge=0.0,
        le=180.0,
        description="The same for sightings without a ground fix (smoke above the horizon): bearing difference.",
    )
    sky_smoke_range_m: float = Field(
        20_000.0,
        ge=0.0,
        le=100_000.0,
        description="Fire or smoke without a ground fix is tied to a fire_watch zone that its line of sight"
        " crosses within this range (when fire_anywhere is off). Too high: zones behind the horizon get it.",
    )
    max_unseen_s: float = Field(
        3600.0,
        ge=1.0,
        le=7 * 86400.0,
        description="An event ends after this long without a sighting even when the camera never looked at the"
        " site again (patrol changed, camera offline). Too low: long patrol cycles split events.",
    )
    update_score_delta: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="An `update` is sent at once (not waiting for update_interval_s) when the best score rose by this.",
    )
    update_move_m: float = Field(
        50.0,
        ge=0.0,
        le=100_000.0,
        description="An `update` is sent at once when the object moved this far (and more than its 90 % ellipse)."
        " Too low: position jitter floods the broker with updates.",
    )
    track: TrackConfig = Field(
        default_factory=lambda: TrackConfig.model_validate({}), description="Tracking per camera and preset."
    )

    @field_validator("tz")
    @classmethod
    def _known_tz(cls, tz: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA time zone such as Asia/Shanghai") from None
        return tz


class TerrainConfig(Strict):
    """The ground that camera rays are intersected with: flat (at each tower's foot) or a DEM GeoTIFF."""

    dem_path: Path | None = Field(
        None,
        description="Digital elevation model (GeoTIFF, any CRS pyproj knows, metres above sea level). None: flat"
        " ground at each tower's ground_elevation_m (good on plains; in hills fixes are off by up to"
        " range × height difference / camera height).",
    )
    vertical_sigma_m: float = Field(
        5.0, ge=0, le=500,
        description="1 σ vertical error of the ground model (DEM error, or how far real ground departs from flat)."
        " Too low: ellipses too small at grazing angles; too high: needlessly large ellipses.",
    )
    curvature: bool = Field(
        True, description="Account for Earth curvature and refraction (drop: 7 cm at 1 km, 7 m at 10 km)."
    )
    refraction_k: float = Field(
        0.13, ge=-0.5, le=0.9,
        description="Coefficient of atmospheric refraction (standard 0.13; larger over cold ground at night, near 0"
        " or negative over hot ground by day). Wrong: range errors grow with range squared.",
    )
    max_range_m: float = Field(
        20000.0, ge=100, le=100000,
        description="Rays that have not met the ground by this horizontal distance give no fix. Too low: far"
        " targets are not located; too high: more DEM to resample and march through (memory, time).",
    )
    occlusion_clearance_m: float = Field(
        3.0, ge=0, le=100,
        description="A fix whose line of sight passes within this many metres of a brow (or clips one and comes"
        " out behind it) may be of an object standing in the ground hidden behind it: such a fix is flagged"
        " occlusion_possible and its ellipse stretched along the line of sight over the hidden ground (DEM only;"
        " 0 turns it off). Too low: a machine behind a hill gets a confident fix on the near slope; too high:"
        " ordinary fixes over rolling ground are flagged and stretched.",
    )
    dem_step_m: float | None = Field(
        None, ge=1, le=500,
        description="Resampling step of the DEM around each tower; None uses the DEM's own resolution. Too"
        " coarse: thin ridges are missed; too fine: memory and start-up time grow with (range/step)².",
    )


class OpsConfig(Strict):
    """Health, metrics and logs for the people who keep the box running."""

    http_host: str = Field("127.0.0.1", description="Address of the /health and /metrics server.")
    http_port: int | None = Field(
        9108, ge=0, le=65535, description="Port of /health and /metrics; 0 picks a free one, null turns it off."
    )
    stale_frame_s: float = Field(
        30.0, gt=0, le=86400, description="/health reports a camera unhealthy when its last frame is older."
    )


class HarvestConfig(Strict):
    """Hard-example harvesting: save frames and predicted boxes (YOLO labels) for a person to correct,
    then `minewatch train --data <dir>`."""

    enabled: bool = Field(False, description="Save frames by the rules below.")
    dir: Path = Field(Path("var/harvest"), description="Folder of images/, labels/ and classes.txt.")
    on_alert: bool = Field(True, description="Save the frame of every new alert (true or false alarms alike).")
    low_score: bool = Field(
        True,
        description="Save frames with a detection scoring between low_score_min and its class threshold"
        " (the model hesitated). Needs the detector to return scores down to low_score_min.",
    )
    low_score_min: float = Field(
        0.1,
        ge=0.01,
        le=0.99,
        description="Lowest score still worth a look. Too low: mostly noise is saved; too high: near misses"
        " are never seen.",
    )
    sample_every_s: float = Field(
        3600.0,
        ge=0,
        le=30 * 86400,
        description="Save one frame per camera and preset this often, whatever is seen (0: off). Gives"
        " ordinary background for training.",
    )
    min_interval_s: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="At most one frame per camera, preset and rule in this time. Too low: a long event fills"
        " the disk with near-identical frames; too high: hard moments are skipped.",
    )
    max_images: int = Field(
        20000, ge=1, le=10_000_000, description="Stop saving (logged once) when the folder holds this many images."
    )
    jpeg_quality: int = Field(95, ge=50, le=100, description="JPEG quality of saved frames.")


class FusionConfig(Strict):
    """Two-tower fixes: sightings of one class by two cameras whose bearings cross are fused into one fix."""

    enabled: bool = Field(True, description="Fuse fixes of two cameras (no effect with one camera).")
    window_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Longest time between the two sightings. Too low: towers on different patrol tours never fuse;"
        " too high: a machine that moved is fused with where it was.",
    )
    min_crossing_deg: float = Field(
        5.0, ge=1, le=90, description="Least angle between the two sightlines; flatter crossings locate badly."
    )
    gate_quantile: float = Field(
        0.9999,
        ge=0.9,
        le=0.999999,
        description="Two fixes fuse when the χ² (2 dof) of their intersection is below this quantile of χ²₂"
        " (0.9999: 18.4). The residuals of true pairs have heavier tails than Gaussian: measured, 0.99 rejects"
        " ~2 % of true pairs and 0.9999 ~0.3 % (docs/GEO.md). Too low: true pairs are turned away (one-tower"
        " ellipses instead of a fused fix); too high: two different machines fuse into a fix between them.",
    )


_DEFAULT_SIZE_FLOOR_PX: dict[ClassName, float] = {"excavator": 24.0, "truck": 24.0, "person": 32.0, "fire": 16.0,
                                                  "smoke": 24.0}
_DEFAULT_OBJECT_HEIGHT_M: dict[ClassName, float] = {"excavator": 3.0, "truck": 3.0, "person": 1.7, "fire": 5.0,
                                                    "smoke": 20.0}


class CoverageConfig(Strict):
    """`minewatch coverage`: which zones the towers really watch, at the detector's size floor."""

    size_floor_px: dict[ClassName, Annotated[float, Field(ge=2, le=2000)]] = Field(
        default_factory=lambda: dict(_DEFAULT_SIZE_FLOOR_PX),
        description="Smallest object height (source-frame pixels) the detector finds with recall ≥ 0.5, per"
        " class. Used only when the model's metadata has no `size_floor_px` (the model's own measured floor"
        " wins; the output says which was used). Too low: zones are called watched where machines are too"
        " small to be found; too high: towers are zoomed in (or added) where they already suffice.",
    )
    object_height_m: dict[ClassName, Annotated[float, Field(gt=0, le=500)]] = Field(
        default_factory=lambda: dict(_DEFAULT_OBJECT_HEIGHT_M),
        description="Height of the object each class must find (a 3 m machine, a 20 m plume): its pixel height"
        " at a zone is focal length × this / distance. Too low: zones look worse watched than they are; too"
        " high: better.",
    )
    min_visible_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A preset watches a zone only if at least this share of the zone's part in its frame is in"
        " line of sight (not hidden by terrain). Too low: a zone whose corner peeks over a hill counts as"
        " watched; too high: big zones partly behind a fold count as occluded.",
    )
    sample_step_m: float = Field(
        25.0,
        ge=2,
        le=1000,
        description="Zones are sampled on a grid this fine (finer for small zones, at most ~2000 points each)."
        " Too coarse: small hidden patches are missed; too fine: slow on many zones and towers.",
    )
    above_ground_m: float = Field(
        1.5,
        ge=0,
        le=50,
        description="A zone point is visible when a point this high above the ground there is in line of sight"
        " (half a 3 m machine). Too low: a machine whose top shows over a brow counts as hidden; too high:"
        " ground hidden behind a low bank counts as seen.",
    )
    image_wh_px: tuple[Annotated[int, Field(ge=64, le=16384)], Annotated[int, Field(ge=64, le=16384)]] = Field(
        (1920, 1080),
        description="Source frame size (width, height) the floor is measured in; pixel heights scale with it."
        " Wrong: every pixel height and suggested zoom is off by the ratio.",
    )


class Config(Strict):
    """The whole of ``cameras.yaml``."""

    cameras: Annotated[list[CameraConfig], Field(min_length=1, description="The cameras this box watches.")]
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="The detector.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="The broker.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alerts and the outbox.")
    zones: ZonesConfig = Field(default_factory=ZonesConfig, description="Geofences.")
    ops: OpsConfig = Field(default_factory=OpsConfig, description="Health and metrics endpoints.")
    fusion: FusionConfig = Field(default_factory=FusionConfig, description="Two-tower fixes.")
    terrain: TerrainConfig = Field(default_factory=TerrainConfig, description="Ground model for geolocation.")
    harvest: HarvestConfig = Field(default_factory=HarvestConfig, description="Hard-example harvesting.")
    smoke: SmokeConfig = Field(default_factory=SmokeConfig, description="Tower smoke stage (docs/SMOKE.md).")
    coverage: CoverageConfig = Field(default_factory=CoverageConfig, description="`minewatch coverage`.")

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"duplicate camera id {cam.id!r}")
            seen.add(cam.id)
        return cameras

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


def _resolve_paths(model: BaseModel, base: Path) -> None:
    """Make every relative Path field (recursively) relative to ``base``, and file sources too."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            object.__setattr__(model, name, base / value)
        elif isinstance(value, BaseModel):
            _resolve_paths(value, base)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _resolve_paths(item, base)
    if isinstance(model, CameraConfig) and "://" not in model.source and not Path(model.source).is_absolute():
        object.__setattr__(model, "source", str(base / model.source))


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """``('cameras', 0, 'lat')`` → ``cameras[0] (id=cam1).lat``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) and "id" in node[item]:
                label = f"[{item}] (id={node[item]['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts) or "(top level)"


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model under ``root`` that holds the field at ``loc`` (list indexes and dict keys skipped)."""
    model: type[BaseModel] | None = root
    for item in loc:
        if model is None:
            return None
        if isinstance(item, int) or item not in model.model_fields:
            continue
        model = _inner_model(model.model_fields[item].annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside ``X``, ``X | None``, ``list[X]``, ``dict[str, X]``, ``Annotated[X, …]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def nearest_name(name: str, known: list[str]) -> str | None:
    """The known name closest to a mistyped one (``mast_hieght_m`` → ``mast_height_m``), or None."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def validation_error_to_user_error(source: str, exc: ValidationError, data: Any,
                                   root: type[BaseModel] | None = None) -> UserError:
    """The first error as one line; ``root`` (default :class:`Config`) is the model that was validated,
    for suggesting the nearest known name of a mistyped field."""
    err = exc.errors()[0]
    field = _loc(tuple(err["loc"]), data)
    kind = err["type"]
    found: object = err.get("input")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        model = _model_at(root or Config, tuple(err["loc"][:-1]))
        guess = nearest_name(name, list(model.model_fields)) if model is not None else None
        expected = "only known fields " + (f"(did you mean {guess!r}?)" if guess else "(see docs/CONFIG.md)")
        found = f"unknown field {name!r}"
    elif kind == "missing":
        expected, found = "this required field", "nothing"
    elif isinstance(found, dict):  # a check across fields: name the fields it concerns, not the whole section
        expected = msg
        named = [f"{k} {v!r}" for k, v in found.items() if re.search(rf"\b{re.escape(str(k))}\b", msg)]
        found = ", ".join(named) if named else "fields " + ", ".join(map(str, found))
    else:
        expected = msg.replace("Input should be ", "")
    if isinstance(found, str):
        found = redact_url(found)
    more = len(exc.errors()) - 1
    error = UserError(source, field, expected, found)
    if more:
        error.args = (f"{error.args[0]} (and {more} more problem{'s' if more > 1 else ''})",)
    return error


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(str(path), None, "an existing config file", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(str(path), None, "a readable UTF-8 file", exc) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(str(path), where, "valid YAML", problem) from None


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve ``cameras.yaml``; raises :class:`UserError` on any mistake."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(str(path), None, "a mapping with a `cameras:` list", type(data).__name__)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_user_error(str(path), exc, data) from None
    _resolve_paths(config, path.resolve().parent)
    return config
