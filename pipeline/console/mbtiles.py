"""A local MBTiles file as the console's base map (issue 18.7): tiles served at /map/tiles/<z>/<x>/<y>.

MBTiles 1.x is one SQLite file: ``tiles(zoom_level, tile_column, tile_row, tile_data)`` with TMS rows (row 0
at the south), and ``metadata(name, value)``. Leaflet asks for XYZ rows (row 0 at the north): the row is
flipped here. The file is opened read-only; the tile's type (PNG, JPEG, WebP) is read from its first bytes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from pipeline.errors import UserError

MAGIC: tuple[tuple[bytes, str], ...] = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"RIFF", "image/webp"))


class MBTiles:
    """Read-only tile source; thread-safe (one connection per thread)."""

    def __init__(self, path: Path, field: str = "web.mbtiles_path") -> None:
        self.path = path
        self._local = threading.local()
        if not path.is_file():
            raise UserError(str(path), field, "an existing MBTiles file", "no such file")
        try:
            meta = dict(self._conn().execute("SELECT name, value FROM metadata").fetchall())
            zooms = self._conn().execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UserError(str(path), field, "an MBTiles file (SQLite with tiles and metadata tables)", exc) from None
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in meta.items()}
        self.min_zoom = int(zooms[0] or 0)
        self.max_zoom = int(zooms[1] or 0)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def tile(self, z: int, x: int, y: int) -> tuple[str, bytes] | None:
        """(mime type, bytes) of the XYZ tile, or None where the file has none."""
        if not 0 <= z <= 30 or not 0 <= x < 2**z or not 0 <= y < 2**z:
            return None
        row = self._conn().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, 2**z - 1 - y),
        ).fetchone()
        if row is None:
            return None
        data = bytes(row[0])
        mime = next((m for magic, m in MAGIC if data.startswith(magic)), "application/octet-stream")
        return mime, data
