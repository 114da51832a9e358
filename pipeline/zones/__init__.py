"""Geofences in world coordinates, the rules of illegal mining, and alert events (docs/ZONES.md).

- :mod:`pipeline.zones.model`: zone files → :class:`Zone` (``load_zones``, ``zone_to_ref``);
- :mod:`pipeline.zones.index`: zones in local metres, STRtree, signed distance, probability in a zone;
- :mod:`pipeline.zones.rules`: which rule a located sighting meets;
- :mod:`pipeline.zones.events`: ``EventManager``, events new/update/end per camera.
"""

from pipeline.zones.model import ZONE_KINDS, Zone, load_zones, zone_to_ref

__all__ = ["ZONE_KINDS", "Zone", "load_zones", "zone_to_ref"]
