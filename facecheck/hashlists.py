"""Hash lists that investigators exchange: read them (`scan --known-hashes`), match files against
them, and write a scan's findings in the same format (`facecheck export --format pdq`).

A list is a text or CSV file with one hash a line, PDQ (64 hex digits, as ThreatExchange writes
them) or the 64-bit pHash (16 hex digits, as imagehash writes them), and an optional label:
- CSV with a header: a column named pdq, phash or hash, and optionally label (or name, description, tag);
- or headerless lines `HASH[,; tab or space]LABEL`; blank lines and lines starting with # are skipped.

Matching: PDQ within MATCH_BITS (31 of 256, ThreatExchange's usual threshold) of the file's PDQ or of
its mirror image's; pHash within PHASH_MATCH_BITS (4 of 64) of the file's pHash. Distinct FFHQ-aligned
faces never came within 31 PDQ bits of each other in ../shared/data, but often within 8 pHash bits,
hence the tight pHash threshold (numbers: benchmarks/bench_pdq.py, README). Imported lists come
without pictures, so there is no second, verifying step as for reuse within a scan.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from .hashing import Hash, plain_border
from .index import HashIndex
from .pdq import MATCH_BITS, pdq

PHASH_MATCH_BITS = 4
HASH_COLUMNS = ("pdq", "phash", "hash")
LABEL_COLUMNS = ("label", "name", "description", "tag")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class KnownMatch:
    """One entry of an imported list that a file matched."""
    list: str        # the list's file name
    label: str
    hash: str        # the list's hash, hex
    kind: str        # pdq | phash
    distance: int    # bits

    def to_dict(self) -> dict:
        return asdict(self)


class HashList:
    """The PDQ and pHash entries of one or more list files, searchable."""

    def __init__(self, entries: list[tuple[str, str, str, str]]):
        """entries: (list name, label, kind, hex)."""
        self.pdq = [e for e in entries if e[2] == "pdq"]
        self.phash = [e for e in entries if e[2] == "phash"]
        codes = np.stack([np.frombuffer(bytes.fromhex(e[3]), np.uint8) for e in self.pdq]) if self.pdq \
            else np.empty((0, 32), np.uint8)
        self._pdq_index = HashIndex(codes, exact=True)
        self._phash = np.array([int(e[3], 16) for e in self.phash], dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.pdq) + len(self.phash)

    def match(self, pdq_probes: list[Hash], phash: Hash) -> list[KnownMatch]:
        """Every entry within its threshold of any PDQ probe (see pdq_probes) or of the pHash, nearest
        first (a PDQ entry once, at its nearest distance)."""
        found: dict[int, int] = {}
        queries = pdq_probes
        for ids, dist in self._pdq_index.range_search(np.stack([np.frombuffer(h.packed(), np.uint8) for h in queries]),
                                                      MATCH_BITS):
            for i, d in zip(ids.tolist(), dist.tolist()):
                found[i] = min(d, found.get(i, d))
        out = [KnownMatch(*self._named(self.pdq[i]), int(d)) for i, d in found.items()]
        if len(self._phash):
            mine = np.uint64(int(str(phash), 16))
            distances = np.bitwise_count(self._phash ^ mine)
            out += [KnownMatch(*self._named(self.phash[i]), int(distances[i]))
                    for i in np.flatnonzero(distances <= PHASH_MATCH_BITS).tolist()]
        return sorted(out, key=lambda m: (m.distance, m.list, m.label))

    @staticmethod
    def _named(entry: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
        name, label, kind, hex_hash = entry
        return name, label, hex_hash, kind


def pdq_probes(rgb: np.ndarray, plain: Hash) -> list[Hash]:
    """The PDQ hashes a file is looked up by: the image's own (`plain`, already computed), its
    mirror image's, and, where reposting added a plain frame, those of the image without it.
    (PDQ itself does not survive a frame: a 12 px frame at 300 px moved it ~128 bits in
    benchmarks/bench_pdq.py. Crops cannot be undone this way and are missed.)"""
    probes = [plain, pdq(rgb[:, ::-1]).hash]
    h, w = rgb.shape[:2]
    top, bottom, left, right = plain_border(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
    if top or bottom or left or right:
        inner = rgb[top:h - bottom, left:w - right]
        probes += [pdq(inner).hash, pdq(inner[:, ::-1]).hash]
    return probes


def _kind_of(hex_hash: str) -> str | None:
    if not _HEX.match(hex_hash):
        return None
    return {64: "pdq", 16: "phash"}.get(len(hex_hash))


def parse_list(text: str, name: str) -> list[tuple[str, str, str, str]]:
    """(list name, label, kind, lower-case hex) of each entry; ValueError naming the first bad line."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{name}: no hashes in it")
    first = [c.strip().lower() for c in next(csv.reader([lines[0]]))]
    entries = []
    if any(c in HASH_COLUMNS for c in first):   # a CSV with a header
        hash_col = next(first.index(c) for c in HASH_COLUMNS if c in first)
        label_col = next((first.index(c) for c in LABEL_COLUMNS if c in first), None)
        for number, row in enumerate(csv.reader(lines[1:]), start=2):
            value = row[hash_col].strip() if hash_col < len(row) else ""
            label = row[label_col].strip() if label_col is not None and label_col < len(row) else ""
            entries.append(_entry(name, number, value, label))
    else:
        for number, line in enumerate(lines, start=1):
            parts = re.split(r"[,;\t ]+", line.strip(), maxsplit=1)
            entries.append(_entry(name, number, parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return entries


def _entry(name: str, number: int, value: str, label: str) -> tuple[str, str, str, str]:
    kind = _kind_of(value)
    if kind is None:
        raise ValueError(f"{name}, line {number}: {value[:80]!r} is neither a PDQ hash (64 hex digits) "
                         f"nor a pHash (16 hex digits)")
    return name, label, kind, value.lower()


@lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int) -> tuple:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read hash list {path}: {getattr(e, 'strerror', None) or e}") from None
    return tuple(parse_list(text, p.name))


def load_lists(paths: Iterable[str | Path]) -> HashList:
    """The entries of every list file (read once per process while the files are unchanged)."""
    entries = []
    for path in paths:
        try:
            mtime = Path(path).stat().st_mtime_ns
        except OSError as e:
            raise ValueError(f"cannot read hash list {path}: {e.strerror or e}") from None
        entries += _read(str(path), mtime)
    return _cached_list(tuple(entries))


@lru_cache(maxsize=4)
def _cached_list(entries: tuple) -> HashList:
    return HashList(list(entries))


def write_list(rows: Iterable[tuple[str, str]], out: io.TextIOBase) -> int:
    """Write (PDQ hex, label) rows as a CSV list with a header (pdq,label) that parse_list reads
    back; each hash once. Returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pdq", "label"])
    seen, n = set(), 0
    for hex_hash, label in rows:
        if hex_hash and hex_hash not in seen:
            seen.add(hex_hash)
            writer.writerow([hex_hash, label])
            n += 1
    return n


def export_rows(results) -> Iterable[tuple[str, str]]:
    """(PDQ, label) of a scan's findings: files flagged as GAN faces and members of reuse groups."""
    for r in results:
        if not r.pdq or not r.pdq_quality:
            continue   # no hash, or a flat image whose hash says nothing
        if r.verdict == "gan":
            yield r.pdq, f"facecheck: GAN face (gan_score {r.gan_score:.3f}): {r.path}"
        elif r.cluster is not None:
            yield r.pdq, f"facecheck: reused avatar, group {r.cluster} of {r.cluster_size} files: {r.path}"
