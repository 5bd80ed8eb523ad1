"""Reading the hash lists that investigators exchange, in the formats other tools write them.

A list is a text or CSV file (UTF-8, or UTF-16 with its byte-order mark) with one hash a line: PDQ
(64 hex digits, as ThreatExchange writes them), the 64-bit pHash (16 hex digits, as imagehash writes
them) or the SHA-256 of a known file (64 hex digits), and optionally a label and a PDQ quality:
- CSV with a header: a column named pdq, phash, sha256 or hash, optionally label (or name,
  description, tag, file, filename, path) and quality; our own export is such a CSV (pdq,quality,label);
- ThreatExchange's CLI output, `pdq HASH [label]` (or `sha256 HASH`, `phash HASH`) a line;
- pdq-photo-hasher's CSV without a header, `HASH,QUALITY,FILE` (the file becomes the label);
- or headerless lines `HASH[,; tab or space]LABEL`. Blank lines and lines starting with # are skipped.
An empty file and a CSV with a header but no rows are both "no hashes in it".

PDQ and SHA-256 hashes are both 64 hex digits. A column or prefix named pdq or sha256 says which;
otherwise the hashes decide: PDQ sets a bit for each of its 256 coefficients above their median, so a
PDQ hash has exactly 128 bits set (or none, for a flat image), which only ~5% of SHA-256 digests do.
A list where at least 90% of the hashes look like PDQ is read as PDQ, one where at most 25% do as
SHA-256 digests (matched against each file's sha256, kind "sha256"); anything between is refused.

Lists can hold millions of entries (a ThreatExchange export), so they are parsed with numpy: per
entry only its packed hash and the bytes after it (label, quality) are kept, and those bytes are
decoded only for entries a file matches. PDQ entries are searched exactly (a faiss flat binary index,
facecheck/index.py: ~2 ms a probe at 1M entries); the partitioned index missed 55 of 300 planted
entries within 31 bits among 1M PDQ-like codes (benchmarks/bench_hashlists.py --indexes).
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np

PDQ_NAMES = ("pdq",)
PHASH_NAMES = ("phash",)
SHA256_NAMES = ("sha256", "sha-256", "sha_256")
HASH_COLUMNS = PDQ_NAMES + PHASH_NAMES + SHA256_NAMES + ("hash",)
LABEL_COLUMNS = ("label", "name", "description", "tag", "file", "filename", "path")
QUALITY_COLUMN = "quality"
FREE_TEXT_SEPARATORS = b",; \t"
PDQ_SHARE_FOR_PDQ = 0.9      # of 64-digit hashes with 128 (or 0) bits set, to read a list as PDQ
PDQ_SHARE_FOR_SHA256 = 0.25  # at most this share: SHA-256 digests
NO_HASHES = "no hashes in it (an empty list would match nothing: leave it out)"
LINES_PER_CHUNK = 4096       # lines parsed together: bounds the parser's temporary arrays (~3 MB)
KIND_BYTES = {"pdq": 32, "phash": 8, "sha256": 32}

_BITS_IN_BYTE = np.array([bin(i).count("1") for i in range(256)], np.uint8)
_HEX_VALUE = np.full(256, 255, np.uint8)   # 255: not a hex digit
for _value, _digit in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_digit] = _HEX_VALUE[ord(chr(_digit).upper())] = _value
_IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
                b"BM": "BMP"}


def bit_counts(codes: np.ndarray) -> np.ndarray:
    """Set bits in each row of a uint8 array [n, bytes]. A byte lookup table, not numpy's
    bitwise_count, which numpy 1.x lacks (pyproject allows numpy >= 1.26)."""
    codes = np.asarray(codes, np.uint8)
    return _BITS_IN_BYTE[codes.reshape(len(codes), -1)].sum(axis=1, dtype=np.int64)



@dataclass(frozen=True)
class ListFormat:
    """How the bytes after an entry's hash (its "tail") read: free text (the label) or CSV fields
    named by `columns`."""
    columns: tuple[str, ...] | None = None
    delimiter: str = ","

    def label_and_quality(self, tail: bytes) -> tuple[str, int | None]:
        text = tail.decode("utf-8", "replace")
        if self.columns is None:
            return text.strip().lstrip(FREE_TEXT_SEPARATORS.decode()).strip(), None
        fields = next(csv.reader([text], delimiter=self.delimiter), [])
        values = {c: v.strip() for c, v in zip(self.columns, fields)}
        label = next((values[c] for c in LABEL_COLUMNS if values.get(c)), "")
        quality = values.get(QUALITY_COLUMN, "")
        return label, int(quality) if quality.isdigit() else None


@dataclass(eq=False)
class Entries:
    """One kind of hash from one list: packed codes [n, bytes] and each entry's tail, kept as one
    byte string with offsets (not a Python object per entry)."""
    codes: np.ndarray
    tails: bytes = b""
    tail_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))

    def __len__(self) -> int:
        return len(self.codes)

    def tail(self, i: int) -> bytes:
        return self.tails[self.tail_offsets[i]:self.tail_offsets[i + 1]]


@dataclass(eq=False)
class ParsedList:
    name: str
    format: ListFormat
    entries: dict[str, Entries]   # by kind: pdq, phash, sha256

    def __len__(self) -> int:
        return sum(len(e) for e in self.entries.values())

    def rows(self) -> list[tuple[str, str, str, str, int | None]]:
        """(list name, label, kind, hex, quality) of every entry: for tests and small lists."""
        out = []
        for kind, entries in self.entries.items():
            for i in range(len(entries)):
                label, quality = self.format.label_and_quality(entries.tail(i))
                out.append((self.name, label, kind, entries.codes[i].tobytes().hex(), quality))
        return out


# ---------------------------------------------------------------- reading

def _as_utf8(data: bytes, name: str) -> bytes:
    """The list's bytes as UTF-8 (byte-order marks removed, UTF-16/32 converted); images and other
    binary files refused with a message."""
    for magic, kind in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            raise ValueError(f"{name} is an image ({kind}), not a hash list: give a text or CSV file of "
                             f"hashes (facecheck check IMAGE looks at one image)")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise ValueError(f"{name} is an image (WebP), not a hash list: give a text or CSV file of hashes")
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding).encode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{name}: not valid {encoding.upper()} ({e.reason})") from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):]
    if b"\x00" in data[:4096]:
        raise ValueError(f"{name}: not a text file (binary bytes in it); a hash list is text or CSV, "
                         f"UTF-8 or UTF-16 with a byte-order mark")
    return data


def _lines(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the lines that hold something (leading blanks and a trailing \\r
    left out; blank lines and # comments dropped)."""
    if not len(buf):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate([[0], newlines + 1]).astype(np.int64)
    ends = np.concatenate([newlines, [len(buf)]]).astype(np.int64)
    last = len(buf) - 1
    while True:   # leading blanks: one step per blank, rarely more than none
        first = buf[np.minimum(starts, last)]
        blank = (starts < ends) & ((first == ord(" ")) | (first == ord("\t")))
        if not blank.any():
            break
        starts[blank] += 1
    while True:
        final = buf[np.maximum(ends - 1, 0)]
        cr = (ends > starts) & ((final == ord("\r")) | (final == ord(" ")) | (final == ord("\t")))
        if not cr.any():
            break
        ends[cr] -= 1
    keep = (starts < ends) & (buf[np.minimum(starts, last)] != ord("#"))
    return starts[keep], ends[keep]


@dataclass
class _Layout:
    """Where the hash sits on a line: after `prefix` (e.g. b"pdq "), as field `hash_column` of
    `delimiter`-separated fields (0: first); `hint` names the hash kind (pdq, phash, sha256, or None)."""
    format: ListFormat
    prefix: bytes = b""
    hash_column: int = 0
    delimiter: str | None = None   # None: free text (any of , ; tab space)
    hint: str | None = None


def _layout(first: str) -> tuple[_Layout, bool]:
    """The layout of a list from its first line, and whether that line is a header."""
    delimiter = next((d for d in (",", "\t", ";") if d in first), ",")
    header = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])]
    if any(c in HASH_COLUMNS for c in header):
        column = next(header.index(c) for c in HASH_COLUMNS if c in header)
        rest = tuple(header[column + 1:]) if column == 0 else tuple(header)
        return _Layout(ListFormat(rest, delimiter), hash_column=column, delimiter=delimiter,
                       hint=_hint(header[column])), True
    tokens = re.split(r"[,;\t ]+", first, maxsplit=1)
    if tokens[0].lower() in PDQ_NAMES + PHASH_NAMES + SHA256_NAMES and len(tokens) > 1:
        prefix = first[:len(first) - len(tokens[1])].encode()        # ThreatExchange: "pdq HASH"
        return _Layout(ListFormat(), prefix=prefix, hint=_hint(tokens[0].lower())), False
    if re.match(r"^[0-9a-fA-F]{64},\d{1,3},", first):                # pdq-photo-hasher: HASH,QUALITY,FILE
        return _Layout(ListFormat((QUALITY_COLUMN, "file")), delimiter=",", hint="pdq"), False
    return _Layout(ListFormat()), False


def _hint(name: str) -> str | None:
    return "pdq" if name in PDQ_NAMES else "phash" if name in PHASH_NAMES else "sha256" if name in SHA256_NAMES \
        else None


class _Collected:
    """Codes and tails of one hex length (64 or 16 digits), gathered chunk by chunk."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.codes: list[np.ndarray] = []
        self.tails: list[bytes] = []
        self.lengths: list[np.ndarray] = []

    def add(self, codes: np.ndarray, tails: bytes, lengths: np.ndarray) -> None:
        self.codes.append(codes.reshape(-1, self.nbytes))
        self.tails.append(tails)
        self.lengths.append(np.asarray(lengths, np.int64))

    def entries(self) -> Entries:
        codes = np.concatenate(self.codes) if self.codes else np.empty((0, self.nbytes), np.uint8)
        lengths = np.concatenate(self.lengths) if self.lengths else np.empty(0, np.int64)
        return Entries(codes, b"".join(self.tails), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def _vectorised(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, layout: _Layout,
                long: _Collected, short: _Collected) -> np.ndarray:
    """Parse the lines whose hash comes first (after the layout's prefix) with numpy; returns a mask
    of the lines it could not read (quoted fields, another prefix, bad hashes) for the line parser."""
    separators = np.zeros(256, bool)
    separators[list((layout.delimiter or FREE_TEXT_SEPARATORS.decode()).encode())] = True
    last = len(buf) - 1
    prefix = np.frombuffer(layout.prefix, np.uint8)
    offsets = np.arange(65)
    unread = np.ones(len(starts), bool)
    for a in range(0, len(starts), LINES_PER_CHUNK):
        s, e = starts[a:a + LINES_PER_CHUNK], ends[a:a + LINES_PER_CHUNK]
        ok = np.ones(len(s), bool)   # lines still to read here (a line with another prefix is left to the line parser)
        if len(prefix):
            ok &= (e - s >= len(prefix)) & (buf[np.minimum(s[:, None] + np.arange(len(prefix)), last)] == prefix).all(1)
        hash_start = s + len(prefix)
        where = hash_start[:, None] + offsets
        window = buf[np.minimum(where, last, out=where)]    # [lines, 65]: the hash and the byte after it
        del where
        digits = _HEX_VALUE[window]
        length = e - hash_start
        for collected, n in ((long, 64), (short, 16)):
            if not ok.any():
                break
            ends_there = (length == n) | ((length > n) & separators[window[:, n]])
            found = ok & (length >= n) & ends_there & (digits[:, :n] != 255).all(1)
            ok &= ~found
            if not found.any():
                continue
            d = digits[found, :n]
            codes = (d[:, 0::2] << 4) | d[:, 1::2]
            tail_start = hash_start[found] + n + 1
            tail_length = np.maximum(e[found] - tail_start, 0)
            total = int(tail_length.sum())
            tails = b""
            if total:
                before = np.cumsum(tail_length) - tail_length
                tails = buf[np.repeat(tail_start - before, tail_length) + np.arange(total)].tobytes()
            collected.add(codes, tails, tail_length)
            unread[a + np.flatnonzero(found)] = False
    return unread


def _parse_line(line: str, layout: _Layout) -> tuple[str, str]:
    """(hash, tail) of one line the vectorised parser could not read: the tail in the layout's format."""
    if layout.delimiter is None:   # free text, perhaps after a "pdq " prefix
        parts = re.split(r"[,;\t ]+", line.strip(), maxsplit=1)
        if layout.prefix and parts[0].lower() == layout.prefix.decode().strip(FREE_TEXT_SEPARATORS.decode()).lower():
            parts = re.split(r"[,;\t ]+", parts[1], maxsplit=1) if len(parts) > 1 else [""]
        return parts[0], parts[1] if len(parts) > 1 else ""
    fields = next(csv.reader([line], delimiter=layout.delimiter), [""])
    value = fields[layout.hash_column].strip() if layout.hash_column < len(fields) else ""
    if layout.hash_column:   # the tail is the whole row (ListFormat's columns are the header's)
        return value, line
    out = io.StringIO()
    csv.writer(out, delimiter=layout.delimiter, lineterminator="").writerow(fields[1:])
    return value, out.getvalue()


def parse_list(data: bytes | str, name: str) -> ParsedList:
    """The entries of one list file's bytes; ValueError naming the list (and the first bad line)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = _as_utf8(data, name)
    buf = np.frombuffer(data, np.uint8)
    starts, ends = _lines(buf)
    if not len(starts):
        raise ValueError(f"{name}: {NO_HASHES}")
    layout, has_header = _layout(data[starts[0]:ends[0]].decode("utf-8", "replace"))
    if has_header:
        starts, ends = starts[1:], ends[1:]
        if not len(starts):
            raise ValueError(f"{name}: {NO_HASHES}")   # as for an empty file
    long, short = _Collected(32), _Collected(8)
    if layout.hash_column == 0:
        unread = _vectorised(buf, starts, ends, layout, long, short)
    else:
        unread = np.ones(len(starts), bool)
    for i in np.flatnonzero(unread).tolist():   # the lines numpy could not read, in order
        line = data[starts[i]:ends[i]].decode("utf-8", "replace")
        value, tail = _parse_line(line, layout)
        digits = {64: long, 16: short}.get(len(value)) if re.fullmatch(r"[0-9a-fA-F]+", value) else None
        if digits is None:
            number = int(np.count_nonzero(buf[:starts[i]] == ord("\n"))) + 1
            raise ValueError(f"{name}, line {number}: {value[:80]!r} is neither a PDQ hash or SHA-256 "
                             f"(64 hex digits) nor a pHash (16 hex digits)")
        tail_bytes = tail.encode("utf-8")
        digits.add(np.frombuffer(bytes.fromhex(value), np.uint8).copy(), tail_bytes, [len(tail_bytes)])
    entries = {}
    if long.codes:
        long_entries = long.entries()
        entries[_long_kind(long_entries.codes, layout.hint, name)] = long_entries
    if short.codes:
        entries["phash"] = short.entries()
    return ParsedList(name, layout.format, entries)


def _long_kind(codes: np.ndarray, hint: str | None, name: str) -> str:
    """pdq or sha256 for a list's 64-digit hashes: the column or prefix says, or the hashes do."""
    if hint in ("pdq", "sha256"):
        return hint
    weights = bit_counts(codes)
    pdq_like = int(np.count_nonzero((weights == 128) | (weights == 0)))
    share = pdq_like / len(codes)
    if share >= PDQ_SHARE_FOR_PDQ:
        return "pdq"
    if share <= PDQ_SHARE_FOR_SHA256:
        return "sha256"
    raise ValueError(f"{name}: cannot tell whether its 64-digit hashes are PDQ or SHA-256 ({pdq_like} of "
                     f"{len(codes)} have 128 bits set, as PDQ hashes do): name the column pdq or sha256")


# ---------------------------------------------------------------- matching
