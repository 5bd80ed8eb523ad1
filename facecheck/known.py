"""The persistent index of known avatars, grown scan after scan (one SQLite file).

An investigator points every scan at the same index file; each scan looks its photos up there
(so the results say which avatars were seen before, and in which scan and file), then adds them.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from .index import HashIndex

SCHEMA = """
CREATE TABLE IF NOT EXISTS avatars (
    id INTEGER PRIMARY KEY,
    scan TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    dct256 BLOB NOT NULL,
    thumbnail BLOB NOT NULL,
    added TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (scan, path)
);
CREATE INDEX IF NOT EXISTS avatars_sha ON avatars (sha256);
"""


class KnownAvatars:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._index: HashIndex | None = None

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM avatars").fetchone()[0]

    def index(self) -> HashIndex:
        """A search index over every known avatar's dct256 code (built once per scan)."""
        if self._index is None:
            ids, codes = [], []
            for row_id, code in self.db.execute("SELECT id, dct256 FROM avatars ORDER BY id"):
                ids.append(row_id)
                codes.append(np.frombuffer(code, dtype=np.uint8))
            codes_arr = np.stack(codes) if codes else np.empty((0, 32), np.uint8)
            self._index = HashIndex(codes_arr, np.array(ids, dtype=np.int64))
        return self._index

    def thumbnail(self, avatar_id: int) -> np.ndarray:
        blob = self.db.execute("SELECT thumbnail FROM avatars WHERE id=?", (avatar_id,)).fetchone()[0]
        return np.frombuffer(blob, dtype=np.uint8).reshape(64, 64)

    def where(self, avatar_ids) -> list[str]:
        """'scan:path' of each id, in id order."""
        out = []
        for avatar_id in sorted(set(int(i) for i in avatar_ids)):
            scan, path = self.db.execute("SELECT scan, path FROM avatars WHERE id=?", (avatar_id,)).fetchone()
            out.append(f"{scan}:{path}")
        return out

    def by_sha256(self, sha256: str) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM avatars WHERE sha256=?", (sha256,))]

    def add(self, scan: str, rows) -> None:
        """rows: (path, sha256, packed dct256 bytes, 64x64 uint8 thumbnail bytes)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO avatars (scan, path, sha256, dct256, thumbnail) VALUES (?, ?, ?, ?, ?)",
                ((scan, p, s, d, t) for p, s, d, t in rows))
        self._index = None

    def close(self) -> None:
        self.db.close()
