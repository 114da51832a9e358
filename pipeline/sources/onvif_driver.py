"""Moves a real PTZ camera through its presets over ONVIF (``onvif-zeep-async``, the optional ``onvif`` extra).

``GotoPreset`` when the preset names a camera preset token, else ``AbsoluteMove`` in the generic
pan/tilt space (−1…1), converted from the preset's azimuth/tilt with the camera's calibration in
``onvif:`` (``pan_zero_azimuth_deg`` and the pan/tilt degrees at −1 and +1). ``GetStatus`` tells when
the move has ended: ``MoveStatus`` IDLE; cameras that do not report it are taken as idle once their
position stops changing; cameras whose GetStatus fails are taken as moving for ``blind_move_s``.
The client is asynchronous; the driver owns one event loop and runs it on the patrol thread only, so
nothing else waits on the camera.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pipeline.config import CameraConfig, OnvifConfig, PresetConfig
from pipeline.errors import UserError
from pipeline.logs import get_logger


def azimuth_to_onvif_x(azimuth_deg: float, cfg: OnvifConfig) -> float:
    """Preset azimuth (clockwise from north) → ONVIF generic pan x in [−1, 1] (clamped, wrap-aware)."""
    a, b = cfg.pan_deg_at_minus1, cfg.pan_deg_at_plus1
    lo, hi = min(a, b), max(a, b)
    pan = azimuth_deg - cfg.pan_zero_azimuth_deg
    pan = lo + (pan - lo) % 360.0  # into [lo, lo + 360)
    if pan > hi:  # outside the camera's range: the nearer end, going round the circle
        pan = hi if pan - hi <= lo + 360.0 - pan else lo
    return max(-1.0, min(1.0, -1.0 + 2.0 * (pan - a) / (b - a)))


def tilt_to_onvif_y(tilt_deg: float, cfg: OnvifConfig) -> float:
    """Tilt (degrees, up positive) → ONVIF generic tilt y in [−1, 1] (clamped)."""
    a, b = cfg.tilt_deg_at_minus1, cfg.tilt_deg_at_plus1
    return max(-1.0, min(1.0, -1.0 + 2.0 * (tilt_deg - a) / (b - a)))


def onvif_y_to_tilt(y: float, cfg: OnvifConfig) -> float:
    """ONVIF generic tilt y in [−1, 1] → tilt (degrees, up positive): the inverse of :func:`tilt_to_onvif_y`."""
    a, b = cfg.tilt_deg_at_minus1, cfg.tilt_deg_at_plus1
    return a + (y + 1.0) / 2.0 * (b - a)


def onvif_x_to_azimuth(x: float, cfg: OnvifConfig) -> float:
    a, b = cfg.pan_deg_at_minus1, cfg.pan_deg_at_plus1
    return (cfg.pan_zero_azimuth_deg + a + (x + 1.0) / 2.0 * (b - a)) % 360.0


class OnvifDriver:
    """:class:`~pipeline.sources.patrol.PtzDriver` over ONVIF; its calls come from the patrol thread only."""

    def __init__(self, cam: CameraConfig) -> None:
        if cam.onvif is None:
            raise UserError("cameras.yaml", f"cameras (id={cam.id}).onvif", "an onvif: section", "none")
        try:
            from onvif import ONVIFCamera  # noqa: F401  (optional extra)
        except ImportError:
            raise UserError("cameras.yaml", f"cameras (id={cam.id}).patrol.driver",
                            "the ONVIF client installed (pip install 'minewatch[onvif]')",
                            "onvif-zeep-async missing") from None
        self.cfg = cam.onvif
        self.log = get_logger("onvif", cam.id)
        self._password = self.cfg.password()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._camera: Any = None
        self._ptz: Any = None
        self._profile: str | None = self.cfg.profile_token
        self._last_xy: tuple[float, float] | None = None
        self._moved_at = 0.0
        self.status_broken = False  # GetStatus failed: moves are timed with blind_move_s

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(asyncio.wait_for(coro, timeout=15.0))

    async def _connect(self) -> None:
        from onvif import ONVIFCamera

        if self._camera is not None:  # a half-made earlier connection: release its HTTP sessions
            await self._camera.close()
        camera = ONVIFCamera(self.cfg.host, self.cfg.port, self.cfg.username, self._password)
        self._camera = camera
        await camera.update_xaddrs()
        self._ptz = await camera.create_ptz_service()
        if self._profile is None:
            media = await camera.create_media_service()
            profiles = await media.GetProfiles()
            if not profiles:
                raise ConnectionError("the camera reports no media profile")
            self._profile = profiles[0].token
        self.log.info("ONVIF connected to %s:%d, profile %s", self.cfg.host, self.cfg.port, self._profile)

    def _ensure(self) -> None:
        if self._ptz is None:
            self._run(self._connect())

    def goto(self, preset: PresetConfig) -> None:
        try:
            self._ensure()
            self._last_xy = None
            self._moved_at = time.monotonic()
            if preset.onvif_preset_token:
                self._run(self._ptz.GotoPreset({"ProfileToken": self._profile,
                                                "PresetToken": preset.onvif_preset_token}))
                return
            position: dict[str, Any] = {"PanTilt": {"x": azimuth_to_onvif_x(preset.pan_deg, self.cfg),
                                                    "y": tilt_to_onvif_y(preset.tilt_deg, self.cfg)}}
            if preset.zoom is not None:
                position["Zoom"] = {"x": preset.zoom}
            self._run(self._ptz.AbsoluteMove({"ProfileToken": self._profile, "Position": position}))
        except Exception:
            self._ptz = None  # reconnect on the next move
            raise

    def is_moving(self) -> bool:
        try:
            status = self._run(self._ptz.GetStatus({"ProfileToken": self._profile}))
        except Exception as exc:  # unreachable now, or a firmware whose GetStatus answer does not parse
            if not self.status_broken:
                self.log.warning("GetStatus failed (%s); timing moves with blind_move_s = %.1f s",
                                 str(exc)[:200], self.cfg.blind_move_s)
            self.status_broken = True
            return time.monotonic() - self._moved_at < self.cfg.blind_move_s
        move = getattr(status, "MoveStatus", None)
        states = [str(getattr(move, part, "") or "").upper() for part in ("PanTilt", "Zoom")] if move else []
        if any(s == "MOVING" for s in states):
            return True
        if any(s == "IDLE" for s in states):
            return False
        # no MoveStatus: moving while the reported position still changes
        pan_tilt = getattr(getattr(status, "Position", None), "PanTilt", None)
        xy = (float(getattr(pan_tilt, "x", 0.0)), float(getattr(pan_tilt, "y", 0.0)))
        moving = self._last_xy is None or max(abs(xy[0] - self._last_xy[0]), abs(xy[1] - self._last_xy[1])) > 1e-3
        self._last_xy = xy
        return moving

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._camera is not None:
                self._loop.run_until_complete(self._camera.close())
        except Exception:
            self.log.debug("ONVIF close failed", exc_info=True)
        finally:
            self._loop.close()
            self._loop = None
            self._camera = self._ptz = None
