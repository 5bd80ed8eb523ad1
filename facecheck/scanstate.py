"""A scan's working state in DIR/state.sqlite (WAL): every finished file is committed as soon as
its batch is done, so an interrupted scan loses nothing and a rerun continues where it stopped.

Each file keeps its row (record), what matching needs (hashes, thumbnail) and what judging needs
besides the scores (evidence, see pipeline.prepare.Prepared), under the key of the settings its signals were
computed with (signals_key: size limits, device, model files). A rerun keeps a file only under the
same key, and judges it again at its own settings (pipeline.run.run_scan)."""
from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from pathlib import Path

import numpy as np

from .result import Result

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    size INTEGER, mtime_ns INTEGER,
    generation INTEGER NOT NULL,
    record TEXT NOT NULL,
    dct256 BLOB, probes BLOB, thumbnail BLOB,
    evidence TEXT, signals_key TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class ScanState:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(files)")}
        for column in ("evidence", "signals_key"):   # a state written before these: its files are decoded again
            if column not in columns:
                self.db.execute(f"ALTER TABLE files ADD COLUMN {column} TEXT")
        self.generation = int(self.get_meta("generation", "0")) + 1
        self.set_meta("generation", str(self.generation))
        # Verification reads the same aligned-face thumbnails again and again; 20k of them is ~90 MB.
        self.thumbnail = lru_cache(maxsize=20_000)(self._thumbnail)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def finished_sha256(self, path: str, size: int, mtime_ns: int, signals_key: str) -> str | None:
        """The sha256 recorded for a file finished in an earlier run without an error, if its size
        and mtime are unchanged and its signals were computed under `signals_key`; None when it must
        be scanned (new, changed, failed before: a failure may have been fixed since, e.g. a
        permission; or computed under other limits or models)."""
        row = self.db.execute("SELECT size, mtime_ns, json_extract(record, '$.sha256'), "
                              "json_extract(record, '$.error'), signals_key, evidence IS NOT NULL "
                              "FROM files WHERE path=?", (path,)).fetchone()
        if (row is None or row[0] != size or row[1] != mtime_ns or row[3] is not None or row[4] != signals_key
                or not row[5]):
            return None
        return row[2]

    def kept_row(self, path: str) -> tuple[Result, dict]:
        """An earlier run's row of a file finished_sha256 said may be kept, and its evidence."""
        record, evidence = self.db.execute("SELECT record, evidence FROM files WHERE path=?", (path,)).fetchone()
        return Result.from_dict(json.loads(record)), json.loads(evidence)

    def keep(self, result: Result) -> None:
        """Make an earlier run's row, judged again (pipeline.analyze.judge_file), part of this run (it is not
        dropped at the end). Committed with the next batch."""
        self.db.execute("UPDATE files SET generation=?, record=? WHERE path=?",
                        (self.generation, result.to_json(), result.path))

    def save(self, items, signals_key: str) -> None:
        """items: (Result, size, mtime_ns, dct256 bytes|None, probes bytes|None, thumbnail bytes|None,
        evidence dict|None), their signals computed under `signals_key`."""
        with self.db:
            self.db.executemany(
                "INSERT INTO files (path, size, mtime_ns, generation, record, dct256, probes, thumbnail, evidence, "
                "signals_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                "generation=excluded.generation, record=excluded.record, "
                "dct256=excluded.dct256, probes=excluded.probes, thumbnail=excluded.thumbnail, "
                "evidence=excluded.evidence, signals_key=excluded.signals_key",
                ((r.path, size, mtime, self.generation, r.to_json(), d, p, t,
                  None if e is None else json.dumps(e), signals_key) for r, size, mtime, d, p, t, e in items))

    def commit(self) -> None:
        self.db.commit()

    def drop_missing(self) -> int:
        """Forget files that were not seen in this run (deleted since an earlier run)."""
        with self.db:
            return self.db.execute("DELETE FROM files WHERE generation<?", (self.generation,)).rowcount

    def hashed(self):
        """(ids [N], dct256 codes [N, 32]) of every file with hashes, in id order, read in slices
        into arrays sized up front (a million files: 40 MB, with no Python object per file)."""
        n = self.db.execute("SELECT count(*) FROM files WHERE dct256 IS NOT NULL").fetchone()[0]
        ids = np.empty(n, dtype=np.int64)
        codes = np.empty((n, 32), dtype=np.uint8)
        cursor = self.db.execute("SELECT id, dct256 FROM files WHERE dct256 IS NOT NULL ORDER BY id")
        done = 0
        while rows := cursor.fetchmany(4096):
            ids[done:done + len(rows)] = [r[0] for r in rows]
            codes[done:done + len(rows)] = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(-1, 32)
            done += len(rows)
        return ids[:done], codes[:done]

    def probes_in_chunks(self, chunk: int = 2048):
        """Yield (ids, probes [n, P, 32], thumbnails [n, 64, 64], sha256s, paths) in id order."""
        cursor = self.db.execute("SELECT id, probes, thumbnail, record FROM files "
                                 "WHERE dct256 IS NOT NULL ORDER BY id")
        while rows := cursor.fetchmany(chunk):
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            probes = np.stack([np.frombuffer(r[1], np.uint8).reshape(-1, 32) for r in rows])
            thumbs = np.stack([np.frombuffer(r[2], np.uint8).reshape(64, 64) for r in rows])
            records = [json.loads(r[3]) for r in rows]
            yield ids, probes, thumbs, records

    def identical_files(self):
        """Ids of decoded files with the same bytes (sha256): one list per set of two or more."""
        for (ids,) in self.db.execute("SELECT group_concat(id) FROM files WHERE dct256 IS NOT NULL "
                                      "GROUP BY json_extract(record, '$.sha256') HAVING count(*) > 1"):
            yield [int(i) for i in ids.split(",")]

    def judged(self):
        """(id, path, gan_score, verdict) of every decoded file, in path order, streamed."""
        yield from self.db.execute("SELECT id, path, json_extract(record, '$.gan_score'), "
                                   "json_extract(record, '$.verdict') FROM files "
                                   "WHERE dct256 IS NOT NULL ORDER BY path")

    def has_path(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM files WHERE path=?", (path,)).fetchone() is not None

    def file_on_disk(self, file_id: int) -> tuple[str, int, int] | None:
        """(path as recorded, size, mtime_ns) a file was scanned with; None when unknown."""
        row = self.db.execute("SELECT path, size, mtime_ns FROM files WHERE id=?", (int(file_id),)).fetchone()
        return None if row is None or row[1] is None or row[2] is None else (row[0], int(row[1]), int(row[2]))

    def _thumbnail(self, file_id: int) -> np.ndarray:
        blob = self.db.execute("SELECT thumbnail FROM files WHERE id=?", (int(file_id),)).fetchone()[0]
        return np.frombuffer(blob, dtype=np.uint8).reshape(64, 64)

    def results(self):
        """(id, Result) of every file, in path order, streamed."""
        for file_id, record in self.db.execute("SELECT id, record FROM files ORDER BY path"):
            yield file_id, Result.from_dict(json.loads(record))

    def close(self) -> None:
        self.db.close()
