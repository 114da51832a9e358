"""Look closer: a patrolling camera zooms in on an uncertain candidate in a zone (docs/PATROL.md)."""

from pipeline.look.closer import LookCloser
from pipeline.look.geometry import look_pose, zoom_for_hfov

__all__ = ["LookCloser", "look_pose", "zoom_for_hfov"]
