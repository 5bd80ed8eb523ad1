"""The persistent index of known avatars, grown scan after scan (one SQLite file).

An investigator points every scan at the same index file; each scan looks its photos up there
(so the results say which avatars were seen before, and in which scan and file), then adds them.
`facecheck check --index` only looks up: it opens the file read-only and never creates it.
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
    pdq TEXT,
    thumbnail BLOB NOT NULL,
    added TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (scan, path)
);
CREATE INDEX IF NOT EXISTS avatars_sha ON avatars (sha256);
"""


def check_index(path: str | Path) -> None:
    """Refuse, before any work, an index file that cannot be one: a folder, a file that is not an
    SQLite database, or a database of something else. A missing file is fine (a scan creates it; a
    lookup finds nothing in it). Raises ValueError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise ValueError(f"index {path} is a folder, not an index file")
    try:
        db = _read_only(path)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            db.close()
    except sqlite3.Error as e:
        raise ValueError(f"index {path} cannot be read as an index of known avatars ({e})") from None
    if tables and "avatars" not in tables:
        raise ValueError(f"index {path} is an SQLite database of something else (it has no avatars table)")


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


class KnownAvatars:
    def __init__(self, path: str | Path, *, read_only: bool = False):
        """Open (or, unless `read_only`, create) the index at `path`; check_index first."""
        self.path = Path(path)
        check_index(self.path)
        if read_only:
            self.db = _read_only(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(avatars)")}
            if "pdq" not in columns:   # an index written before PDQ: it gains the column, empty for old rows
                self.db.execute("ALTER TABLE avatars ADD COLUMN pdq TEXT")
        self._index: HashIndex | None = None

    def __len__(self) -> int:
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='avatars'").fetchone():
            return 0   # an empty database opened read-only
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

    def where(self, avatar_ids, exclude=None) -> list[str]:
        """'scan:path' of each id, in id order, leaving out those for which exclude(scan, path) is true."""
        out = []
        for avatar_id in sorted(set(int(i) for i in avatar_ids)):
            scan, path = self.db.execute("SELECT scan, path FROM avatars WHERE id=?", (avatar_id,)).fetchone()
            if exclude is None or not exclude(scan, path):
                out.append(f"{scan}:{path}")
        return out

    def by_sha256(self, sha256: str) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM avatars WHERE sha256=?", (sha256,))]

    def add(self, scan: str, rows) -> None:
        """rows: (path, sha256, PDQ hex, packed dct256 bytes, 64x64 uint8 thumbnail bytes)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO avatars (scan, path, sha256, pdq, dct256, thumbnail) VALUES (?, ?, ?, ?, ?, ?)",
                ((scan, p, s, q, d, t) for p, s, q, d, t in rows))
        self._index = None

    def close(self) -> None:
        self.db.close()
