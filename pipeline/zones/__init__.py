"""Geofences in world coordinates (docs/ZONES.md); their rules and events are in :mod:`pipeline.events`.

- :mod:`pipeline.zones.model`: zone files → :class:`Zone` (``load_zones``, ``zone_to_ref``);
- :mod:`pipeline.zones.index`: zones in local metres, STRtree, signed distance, probability in a zone.
"""

from pipeline.zones.model import ZONE_KINDS, Zone, load_zones, zone_to_ref

__all__ = ["ZONE_KINDS", "Zone", "load_zones", "zone_to_ref"]
