"""Geolocation: camera model (pixel ↔ ground), terrain (flat or DEM), uncertainty, two-tower fusion, coordinates."""
