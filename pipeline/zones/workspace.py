"""The zones folder as one transaction: documents read into memory, edited there, checked with the
daemon's own loader (every changed document, and ids unique across the folder), then written to temp
files and renamed into place. A failed check writes nothing (:class:`~pipeline.errors.Problems`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserError, raise_all
from pipeline.zones import io
from pipeline.zones.model import Zone, _check_crs, parse_feature, zone_files


def zone_filename(zone_id: str) -> str:
    """``<id>.geojson``; characters unsafe in a file name become ``_`` and a short hash keeps names apart."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", zone_id).strip(".") or "zone"
    if safe != zone_id:
        safe += "-" + hashlib.sha1(zone_id.encode("utf-8")).hexdigest()[:8]
    return io.zone_filename(safe)


@dataclass
class Workspace:
    """The zones folder as documents in memory; edits are checked with the daemon's loader, then written."""

    folder: Path
    tz: str
    docs: dict[Path, dict[str, Any]] = field(default_factory=dict)
    changed: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    @classmethod
    def open(cls, folder: Path, tz: str) -> Workspace:
        ws = cls(folder, tz)
        if folder.exists():
            for path in zone_files(folder):
                data = io.load_json(path)
                if isinstance(data, dict) and data.get("type") == "Feature":
                    data = {"type": "FeatureCollection", "features": [data]}
                if not isinstance(data, dict) or not isinstance(data.get("features"), list):
                    raise UserError(str(path), "type", "a GeoJSON FeatureCollection", type(data).__name__)
                ws.docs[path] = data
        return ws

    def locate(self, zone_id: str) -> tuple[Path, int] | None:
        for path, doc in self.docs.items():
            for i, feat in enumerate(doc["features"]):
                props = feat.get("properties") if isinstance(feat, dict) else None
                ident = props.get("id") if isinstance(props, dict) else None
                if ident is not None and str(ident) == zone_id:
                    return path, i
        return None

    def feature(self, zone_id: str) -> dict[str, Any]:
        found = self.locate(zone_id)
        if found is None:
            ids = [str(f["properties"]["id"]) for d in self.docs.values() for f in d["features"]
                   if isinstance(f, dict) and isinstance(f.get("properties"), dict) and "id" in f["properties"]]
            known = ", ".join(ids[:10]) + (" …" if len(ids) > 10 else "")
            raise UserError(str(self.folder), f"zone {zone_id}", f"the id of a zone ({known or 'there are none'})",
                            zone_id)
        path, i = found
        feat: dict[str, Any] = self.docs[path]["features"][i]
        return feat

    def put(self, feature: dict[str, Any], replace: bool = False) -> Path:
        zone_id = str(feature["properties"]["id"])
        found = self.locate(zone_id)
        if found is not None:
            path, i = found
            if not replace:
                raise UserError(str(path), f"zone {zone_id}", "a new zone id (or --replace)", "it exists already")
            self.docs[path]["features"][i] = feature
        else:
            path = self.folder / zone_filename(zone_id)
            if path in self.docs:
                raise UserError(str(path), None, "a file name not used yet", "it is used")
            self.docs[path] = {"type": "FeatureCollection", "features": [feature]}
        self.changed.add(path)
        return path

    def drop(self, zone_id: str) -> Path:
        self.feature(zone_id)
        found = self.locate(zone_id)
        assert found is not None
        path, i = found
        del self.docs[path]["features"][i]
        if not self.docs[path]["features"]:
            del self.docs[path]
            self.removed.add(path)
            self.changed.discard(path)
        else:
            self.changed.add(path)
        return path

    def touch(self, zone_id: str) -> Path:
        found = self.locate(zone_id)
        assert found is not None
        self.changed.add(found[0])
        return found[0]

    def check(self) -> list[Zone]:
        """Every changed document through the loader, and ids unique across the folder (or Problems)."""
        errors: list[UserError] = []
        zones: list[Zone] = []
        for path in sorted(self.changed):
            doc = self.docs[path]
            try:
                _check_crs(doc.get("crs"), str(path))
            except UserError as exc:
                errors.append(exc)
            for index, feat in enumerate(doc["features"]):
                try:
                    zones.append(parse_feature(feat, index, str(path), self.tz))
                except UserError as exc:
                    errors.append(exc)
        seen: dict[str, Path] = {}
        for path, doc in sorted(self.docs.items()):
            for feat in doc["features"]:
                props = feat.get("properties") if isinstance(feat, dict) else None
                ident = props.get("id") if isinstance(props, dict) else None
                if ident is None:
                    continue
                if str(ident) in seen and (path in self.changed or seen[str(ident)] in self.changed):
                    errors.append(UserError(str(path), f"(id={ident}).properties.id",
                                            "a zone id used once across all zone files",
                                            f"{str(ident)!r} also in {seen[str(ident)]}"))
                seen.setdefault(str(ident), path)
        raise_all(errors)
        return zones

    def commit(self) -> list[str]:
        """Check, then write changed files and delete emptied ones. Returns what was done, one line each."""
        self.check()
        texts: dict[str, str] = {}
        for path in sorted(self.changed):
            feats = [io.zone_feature(f.get("properties") or {}, f["geometry"]) for f in self.docs[path]["features"]]
            texts[path.name] = io.collection_text(feats)
        done = []
        for name in texts:
            target = self.folder / name
            old = target.read_text(encoding="utf-8") if target.is_file() else None
            if old == texts[name]:
                continue
            done.append(f"{'wrote' if old is None else 'updated'} {target}")
        io.write_files(self.folder, {n: t for n, t in texts.items()}, [p.name for p in self.removed])
        done += [f"removed {p}" for p in sorted(self.removed)]
        return done
