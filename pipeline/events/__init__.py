"""Alert events: the rules a located sighting meets, and the events' lifecycle (docs/ZONES.md).

- :mod:`pipeline.events.rules`: which rule a located sighting meets (``RuleEngine``, ``RuleHit``);
- :mod:`pipeline.events.lifecycle`: ``EventManager``: tracks and fixes → rule hits → events new/update/end
  per camera (dwell, revisits, one event per site).
"""
