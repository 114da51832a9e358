"""minewatch: tower cameras → detection → geolocation → geofence rules → MQTT alerts."""

__version__ = "0.1.0"
