"""Tracking per camera and preset: ByteTrack-style association, N-of-M confirmation, stationary objects."""

from pipeline.track.bytetrack import PresetTrackers, Track, Tracker, greedy_match, per_track

__all__ = ["PresetTrackers", "Track", "Tracker", "greedy_match", "per_track"]
