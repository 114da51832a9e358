"""``smoke:`` in cameras.yaml: the tower smoke stage (docs/SMOKE.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SmokeConfig(BaseModel):
    """Tower smoke: change against the view's own history, confirmed over real time (docs/SMOKE.md)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="Run the smoke stage on every camera (it alerts as class `smoke`).")
    interval_s: float = Field(
        15.0, ge=0.0, le=3600,
        description="Least time between two analyses of one view (camera and preset); frames in between only"
        " carry on the confirmed plumes. Too low: costs CPU for nothing (plumes change over minutes); too high:"
        " alerts come later.",
    )
    width_px: int = Field(
        640, ge=160, le=1920,
        description="Width the frame is shrunk to for the analysis. Too low: a new plume of a few dozen pixels"
        " vanishes; too high: costs CPU and JPEG noise looks like change.",
    )
    tile_px: int = Field(
        8, ge=2, le=64,
        description="Side of a grid tile, pixels of the shrunk frame. Too low: noise; too high: a young plume is"
        " diluted in its tile.",
    )
    ref_min_age_s: float = Field(
        150.0, ge=0.0, le=7200,
        description="Frames at least this old form the reference the current frame is compared with. Too low: a"
        " slowly growing plume is in its own reference and hardly changes; too high: a plume is found later"
        " after a view reset and light changes more in between.",
    )
    ref_max_age_s: float = Field(
        900.0, ge=1.0, le=86400,
        description="Frames older than this leave the reference. Too low: few frames to take the median of"
        " (passing clouds, vehicles leak in); too high: the sun and haze have changed since.",
    )
    history_step_s: float = Field(
        50.0, ge=0.0, le=3600,
        description="Least time between two frames kept in a view's history (memory: one small grey frame"
        " each). Too low: memory; too high: few reference frames.",
    )
    z_threshold: float = Field(
        5.0, ge=1.0, le=100,
        description="A tile brightens when its change exceeds this many times its own usual change (learnt"
        " per tile from the view's history). Too low: trees, haze and noise become candidates; too high: faint"
        " young plumes are missed.",
    )
    z_start: float = Field(
        4.0, ge=0.0, le=100,
        description="Hysteresis: tiles above this (and below z_threshold) may start or continue a candidate,"
        " but only tiles above z_threshold count towards min_area_tiles when it confirms. 0: off (=z_threshold)."
        " Too low: every flicker starts a candidate that a later strong frame confirms; too high (off): the"
        " faint first sighting of a young plume is lost and the alert comes one analysis later.",
    )
    min_brightening: float = Field(
        3.0, ge=0.0, le=255,
        description="Least brightening of a tile against the reference, grey levels (0-255), after local"
        " light changes are removed. Too low: JPEG noise in calm tiles; too high: thin smoke is missed.",
    )
    max_chroma: float = Field(
        40.0, ge=0.0, le=255,
        description="Most colour saturation (max-min of B, G, R, levels) of a smoke tile. Too low: smoke lit"
        " by a low sun is missed; too high: coloured objects (cars, roofs, flowers) pass.",
    )
    max_grey: float = Field(
        250.0, ge=0.0, le=256,
        description="A candidate with a tile at least this bright (mean grey, 0-255) is glare (the sun, a"
        " specular reflection, a blown-out sky), never smoke (256: off). Too low: a white plume in full sun"
        " is missed; too high: glare that creeps with the sun becomes a candidate.",
    )
    horizon_margin_tiles: int = Field(
        2, ge=0, le=50,
        description="A candidate's base may lie this many tiles above the estimated horizon. Too low: a plume"
        " behind a far ridge is missed when the horizon estimate is off; too high: clouds qualify.",
    )
    max_changed_share: float = Field(
        0.08, ge=0.0, le=1.0,
        description="When more than this share of the tiles change at once the frame counts as a global change"
        " (exposure jump, day/night switch, view moved) and is not used. Too low: a big plume suppresses"
        " itself; too high: an exposure jump raises candidates everywhere.",
    )
    confirm_hits: int = Field(
        2, ge=1, le=100,
        description="A plume must be seen in this many analyses within confirm_window_s. Too low: one noisy"
        " frame alerts; too high: alerts come late (minutes with a frame a minute).",
    )
    min_area_tiles: int = Field(
        3, ge=1, le=10000,
        description="Least size of a plume, in tiles, when it is confirmed. Too low: one flickering tile (a"
        " roof in the sun) confirms; too high: a young or distant plume is confirmed later.",
    )
    confirm_window_s: float = Field(
        600.0, ge=1.0, le=86400,
        description="Real time over which confirm_hits are counted. Too low: a plume seen in every other frame"
        " is never confirmed; too high: unrelated flickers add up.",
    )
    confirm_min_span_s: float = Field(
        45.0, ge=0.0, le=86400,
        description="Least real time between the first and the last sighting that confirm a plume (smoke"
        " persists; a bird or a car does not). Too low: brief flickers alert; too high: alerts come late.",
    )
    base_match_tiles: float = Field(
        4.0, ge=0.5, le=100,
        description="A sighting continues a candidate when its base lies within this many tiles of the"
        " candidate's. Too low: a plume whose base estimate wobbles restarts; too high: drifting clouds or"
        " shadows pass as one anchored plume.",
    )
    max_shrink: float = Field(
        0.5, ge=0.0, le=1.0,
        description="A candidate whose area shrinks below this share of its largest is not confirmed (smoke"
        " grows; shadows and passing haze fade). Too low: fading flickers confirm; too high: a plume that"
        " thins in the wind is dropped.",
    )
    ignore_top_frac: float = Field(
        0.04, ge=0.0, le=0.5,
        description="Top share of the frame ignored (the camera's time stamp text). Too low: the changing"
        " text becomes a candidate; too high: plumes high in the frame are cut.",
    )
    hold_s: float = Field(
        180.0, ge=0.0, le=86400,
        description="A confirmed plume is carried on (its box handed to the events on every frame) this long"
        " after its last sighting. Too low: an alert ends between two analyses; too high: an event outlives"
        " its smoke.",
    )

    network_min_score: float = Field(
        0.0, ge=0.0, le=1.0,
        description="When above 0, a plume is confirmed only if the detector network (detector.model_path, a"
        " second session of it, run once per confirmation on a square crop around the plume) scores smoke at"
        " least this much there. 0: off (the starter model's smoke score on such crops is noise: docs/SMOKE.md)."
        " Too low: no second opinion; too high: real plumes the network is unsure of are vetoed.",
    )

    @model_validator(mode="after")
    def _ages(self) -> SmokeConfig:
        if self.ref_max_age_s <= self.ref_min_age_s:
            raise ValueError(f"ref_max_age_s ({self.ref_max_age_s}) must exceed ref_min_age_s ({self.ref_min_age_s})")
        return self
