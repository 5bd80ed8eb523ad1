"""Hash lists that investigators exchange: read them (`scan --known-hashes`), match files against
them, and write a scan's findings in the same format (`facecheck export --format pdq`).

Matching: PDQ within MATCH_BITS (31 of 256, ThreatExchange's usual threshold) of the file's PDQ or of
its mirror image's; pHash within PHASH_MATCH_BITS (4 of 64) of the file's pHash; SHA-256 exactly.
Distinct FFHQ-aligned faces never came within 31 PDQ bits of each other in ../shared/data, but often
within 8 pHash bits, hence the tight pHash threshold (numbers: benchmarks/bench_pdq.py, README).
Imported lists come without pictures, so there is no second, verifying step as for reuse within a scan.
Reading the lists, in every format other tools write: facecheck.hashlist_parse.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable

import cv2
import numpy as np

from .hashing import Hash
from .hashlist_parse import KIND_BYTES, QUALITY_COLUMN, ParsedList, bit_counts, parse_list
from .index import HashIndex
from .pdq import MATCH_BITS, pdq_of_luminance

PHASH_MATCH_BITS = 4
EXPORT_MIN_QUALITY = 50      # the PDQ documentation: hashes of quality below ~50 say little about the image


@dataclass(frozen=True)
class KnownMatch:
    """One entry of an imported list that a file matched."""
    list: str        # the list's file name
    label: str
    hash: str        # the list's hash, hex
    kind: str        # pdq | phash | sha256
    distance: int    # bits (0 for sha256: the same bytes)
    quality: int | None = None   # the list's PDQ quality for the entry, when it gives one

    def to_dict(self) -> dict:
        return asdict(self)




class HashList:
    """The PDQ, pHash and SHA-256 entries of one or more lists, searchable."""

    def __init__(self, lists: list[ParsedList]):
        self.lists = lists
        self._kinds = {}
        for kind in KIND_BYTES:
            parts = [(j, p.entries[kind]) for j, p in enumerate(lists) if kind in p.entries]
            codes = parts[0][1].codes if len(parts) == 1 else \
                np.concatenate([e.codes for _, e in parts]) if parts else np.empty((0, KIND_BYTES[kind]), np.uint8)
            first = np.cumsum([0] + [len(e) for _, e in parts])
            self._kinds[kind] = (codes, [j for j, _ in parts], first)
        self._pdq_index = None
        phash = self._kinds["phash"][0]
        self._phash = phash.view(">u8").ravel().astype(np.uint64) if len(phash) else np.empty(0, np.uint64)
        sha = self._kinds["sha256"][0]
        keys = sha[:, :8].copy().view(">u8").ravel().astype(np.uint64) if len(sha) else np.empty(0, np.uint64)
        self._sha_order = np.argsort(keys, kind="stable")
        self._sha_keys = keys[self._sha_order]

    def __len__(self) -> int:
        return sum(len(p) for p in self.lists)

    def count(self, kind: str) -> int:
        return len(self._kinds[kind][0])

    def match(self, pdq_probes: list[Hash], phash: Hash | None, sha256: str | None = None) -> list[KnownMatch]:
        """Every entry within its threshold of any PDQ probe (see pdq_probes), of the pHash, or with
        the file's sha256, nearest first (a PDQ entry once, at its nearest distance)."""
        out = []
        if self.count("pdq") and pdq_probes:
            if self._pdq_index is None:   # built on first use: a process that only checks a list never pays
                self._pdq_index = HashIndex(self._kinds["pdq"][0], exact=True)
            found: dict[int, int] = {}
            queries = np.stack([np.frombuffer(h.packed(), np.uint8) for h in pdq_probes])
            for ids, dist in self._pdq_index.range_search(queries, MATCH_BITS):
                for i, d in zip(ids.tolist(), dist.tolist()):
                    found[i] = min(d, found.get(i, d))
            out += [self._match("pdq", i, d) for i, d in found.items()]
        if self.count("phash") and phash is not None:
            mine = np.uint64(int(str(phash), 16))
            distances = bit_counts((self._phash ^ mine).view(np.uint8).reshape(-1, 8))
            out += [self._match("phash", i, int(distances[i]))
                    for i in np.flatnonzero(distances <= PHASH_MATCH_BITS).tolist()]
        if self.count("sha256") and sha256:
            digest = np.frombuffer(bytes.fromhex(sha256), np.uint8)
            key = np.uint64(int(sha256[:16], 16))
            lo, hi = np.searchsorted(self._sha_keys, key, "left"), np.searchsorted(self._sha_keys, key, "right")
            codes = self._kinds["sha256"][0]
            out += [self._match("sha256", i, 0) for i in self._sha_order[lo:hi].tolist()
                    if np.array_equal(codes[i], digest)]
        return sorted(out, key=lambda m: (m.distance, m.list, m.label))

    def _match(self, kind: str, i: int, distance: int) -> KnownMatch:
        codes, owners, first = self._kinds[kind]
        part = int(np.searchsorted(first, i, "right")) - 1
        parsed = self.lists[owners[part]]
        label, quality = parsed.format.label_and_quality(parsed.entries[kind].tail(i - int(first[part])))
        return KnownMatch(parsed.name, label, codes[i].tobytes().hex(), kind, int(distance), quality)


def pdq_probes(luma: np.ndarray, plain: Hash, border: tuple[int, int, int, int]) -> list[Hash]:
    """The PDQ hashes a file is looked up by: the image's own (`plain`, already computed), its
    mirror image's, and, where reposting added a plain frame (`border`, hashing.plain_border's widths),
    those of the image without it. `luma` is the image's pdq.luminance, computed once for all of them.
    (PDQ itself does not survive a frame: a 12 px frame at 300 px moved it ~128 bits in
    benchmarks/bench_pdq.py. Crops cannot be undone this way and are missed.)
    The mirror is hashed from the mirrored pixels, not by flipping DCT signs as the reference's dihedral
    hashes do: that shortcut lands ~11 bits away from the mirror's own PDQ (the filter and the sample
    grid are not symmetric), a third of the match budget."""
    probes = [plain, pdq_of_luminance(cv2.flip(luma, 1)).hash]
    h, w = luma.shape
    top, bottom, left, right = border
    if top or bottom or left or right:
        inner = np.ascontiguousarray(luma[top:h - bottom, left:w - right])
        probes += [pdq_of_luminance(inner).hash, pdq_of_luminance(cv2.flip(inner, 1)).hash]
    return probes


@lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int) -> ParsedList:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read hash list {path}: {e.strerror or e}") from None
    return parse_list(data, p.name)


def load_lists(paths: Iterable[str | Path]) -> HashList:
    """The entries of every list file (parsed once per process while the files are unchanged)."""
    parsed = []
    for path in paths:
        try:
            st = Path(path).stat()
        except OSError as e:
            raise ValueError(f"cannot read hash list {path}: {e.strerror or e}") from None
        if not Path(path).is_file():
            raise ValueError(f"hash list {path} is not a file")
        parsed.append(_read(str(path), st.st_mtime_ns, st.st_size))
    return _combined(tuple(parsed))


@lru_cache(maxsize=4)
def _combined(parsed: tuple[ParsedList, ...]) -> HashList:
    return HashList(list(parsed))


# ---------------------------------------------------------------- export

def write_list(rows: Iterable[tuple[str, int, str]], out: io.TextIOBase) -> int:
    """Write (PDQ hex, quality, label) rows as a CSV list with a header (pdq,quality,label) that
    parse_list reads back; each hash once. Returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pdq", QUALITY_COLUMN, "label"])
    seen, n = set(), 0
    for hex_hash, quality, label in rows:
        if hex_hash and hex_hash not in seen:
            seen.add(hex_hash)
            writer.writerow([hex_hash, quality, label])
            n += 1
    return n


def shareable_path(path: str) -> str:
    """A row's path as it may leave this machine: relative paths as they are, an absolute one (a
    scan of a list of paths) cut to its file name, so a shared list does not reveal local folders."""
    for flavour in (PurePosixPath, PureWindowsPath):
        p = flavour(path)
        if p.is_absolute() or p.drive or p.root:
            return p.name
    return path


def export_rows(results, min_quality: int = EXPORT_MIN_QUALITY) -> tuple[list[tuple[str, int, str]], int]:
    """(PDQ, quality, label) of a scan's findings: files flagged as GAN faces and members of reuse
    groups; and how many findings were left out for a PDQ quality below `min_quality` (a flat
    image's hash, quality 0, says nothing and is always left out)."""
    rows, low = [], 0
    for r in results:
        if not r.pdq or not r.pdq_quality or (r.verdict != "gan" and r.cluster is None):
            continue
        if r.pdq_quality < min_quality:
            low += 1
            continue
        path = shareable_path(r.path)
        if r.verdict == "gan":
            rows.append((r.pdq, r.pdq_quality, f"facecheck: GAN face (gan_score {r.gan_score:.3f}): {path}"))
        else:
            rows.append((r.pdq, r.pdq_quality,
                         f"facecheck: reused avatar, group {r.cluster} of {r.cluster_size} files: {path}"))
    return rows, low
