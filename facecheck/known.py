"""The persistent index of known avatars, grown scan after scan (one SQLite file).

An investigator points every scan at the same index file; each scan looks its photos up there
(so the results say which avatars were seen before, and in which scan and file), then adds them.
`facecheck check --index` only looks up: it opens the file read-only and never creates it.

Each entry names its scan and the scan's output folder (`origin`): a scan adds and updates its own
entries only, and a scan name another output folder already uses is refused (check_index_for_scan),
so no scan ever replaces another's entries.
"""
from __future__ import annotations

import sqlite3
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

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
    origin TEXT,
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
    if tables:
        _check_intact(path)


def _check_intact(path: Path) -> None:
    """PRAGMA quick_check: a damaged page would otherwise surface only when a scan's look-ups reach
    it, after the whole scan (it reads every page once: seconds for a million avatars). Run once per
    state of the file: the CLI, run_scan and each score_image call check the same index, and the
    answer holds until the file or its write-ahead log changes."""
    first = _first_problem(str(path.resolve()), _file_state(path), _file_state(Path(f"{path}-wal")))
    if first is not None:
        raise ValueError(f"index {path} is damaged ({first}); restore it from a copy or give a new --index file")


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=16)
def _first_problem(path: str, state: tuple[int, int] | None, wal_state: tuple[int, int] | None) -> str | None:
    """quick_check's first finding on the file at `path` in this state (size and mtime of the file and of
    its write-ahead log), or None when it is intact."""
    try:
        db = _read_only(Path(path))
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        finally:
            db.close()
    except sqlite3.Error as e:
        problems = [str(e)]
    if problems == ["ok"]:
        return None
    # past quick_check's "*** in database main ***" header lines
    lines = [line for p in problems for line in p.strip().splitlines() if not line.startswith("***")]
    return lines[0] if lines else "quick_check failed"


LOCK_WAIT_SECONDS = 60.0   # how long a scan waits for another process's write lock on the index


class IndexUnusable(ValueError):
    """The index cannot take this scan's entries: not writable, locked too long, or the scan name is
    another output folder's. One line, for the CLI's exit 2."""


def check_index_for_scan(path: str | Path, scan: str, origin: str, wait_seconds: float | None = None,
                         notice: Callable[[str], None] | None = None) -> None:
    """Before a scan does any work: the index (check_index first) can be written, by a real write
    that is rolled back (file permissions say little: root ignores them; an immutable file or a
    read-only mount is found only this way), waiting up to `wait_seconds` (LOCK_WAIT_SECONDS) for
    another process's lock, with `notice` told once that it waits; and `scan` is not the name of
    another output folder's entries. A missing file needs a folder where it can be created.
    Raises IndexUnusable with a one-line reason."""
    path = Path(path)
    wait_seconds = LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    if not path.exists():
        _check_creatable(path)
        return
    try:
        db = sqlite3.connect(path, timeout=0)
    except sqlite3.Error as e:
        raise IndexUnusable(f"index {path} cannot be opened for writing ({e})") from None
    try:
        deadline, told = time.monotonic() + wait_seconds, False
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")   # the write lock, as adding entries will take it
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() >= deadline:
                    raise IndexUnusable(f"index {path} is still locked by another process after {wait_seconds:g} s; "
                                        "run the scan again when it is free") from None
                if not told and notice is not None:
                    notice(f"index {path} is locked by another process; waiting up to {wait_seconds:g} s")
                    told = True
                time.sleep(0.2)
        try:
            db.execute("CREATE TABLE facecheck_write_test (x)")
        finally:
            db.rollback()
        owners = _origins_of(db, scan)
    except IndexUnusable:
        raise
    except sqlite3.Error as e:
        raise IndexUnusable(f"index {path} cannot be written ({e})") from None
    finally:
        db.close()
    others = owners - {origin}
    if others:
        other = sorted(o or "an earlier version of facecheck" for o in others)[0]
        raise IndexUnusable(f"index {path} already holds a scan named {scan!r} from another output folder "
                            f"({other}); give this scan its own --name")


def _origins_of(db: sqlite3.Connection, scan: str) -> set:
    """The output folders whose entries are named `scan` (None: written before origins were kept)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='avatars'").fetchone():
        return set()
    columns = {row[1] for row in db.execute("PRAGMA table_info(avatars)")}
    if "origin" not in columns:
        return {None} if db.execute("SELECT 1 FROM avatars WHERE scan=? LIMIT 1", (scan,)).fetchone() else set()
    return {row[0] for row in db.execute("SELECT DISTINCT origin FROM avatars WHERE scan=?", (scan,))}


def _check_creatable(path: Path) -> None:
    """A missing index file is created at the end of the scan: its nearest existing folder must be writable."""
    folder = path.resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        tempfile.NamedTemporaryFile(dir=folder, prefix=".facecheck-write-test-").close()
    except OSError as e:
        raise IndexUnusable(f"index {path} cannot be created in {folder}: {e.strerror or e}") from None


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
            self.db = sqlite3.connect(self.path, timeout=LOCK_WAIT_SECONDS)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(avatars)")}
            for column in ("pdq", "origin"):   # an index written before these: old rows keep them empty
                if column not in columns:
                    self.db.execute(f"ALTER TABLE avatars ADD COLUMN {column} TEXT")
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

    def add(self, scan: str, origin: str, rows) -> None:
        """rows: (path, sha256, PDQ hex, packed dct256 bytes, 64x64 uint8 thumbnail bytes), of the scan
        named `scan` writing to the output folder `origin`. An entry of the same scan and path is
        updated only when it is this origin's (a rerun's); another origin's is never replaced."""
        with self.db:
            self.db.executemany(
                "INSERT INTO avatars (scan, path, sha256, pdq, dct256, thumbnail, origin) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (scan, path) DO UPDATE SET sha256=excluded.sha256, pdq=excluded.pdq, "
                "dct256=excluded.dct256, thumbnail=excluded.thumbnail, added=datetime('now') "
                "WHERE avatars.origin = excluded.origin",
                ((scan, p, s, q, d, t, origin) for p, s, q, d, t in rows))
        self._index = None

    def close(self) -> None:
        self.db.close()
