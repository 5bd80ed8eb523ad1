"""The output contract: one `Result` per file, the same record in results.jsonl, results.csv,
`facecheck check --json` and the Python API."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

VERDICTS = ("gan", "real", "no_face", "error")


@dataclass
class Result:
    path: str                              # relative to the scanned folder, '/' separators
    sha256: str | None = None              # of the file's bytes
    width: int | None = None               # after EXIF orientation
    height: int | None = None
    error: str | None = None               # one line, or None
    phash: str | None = None               # 16 hex digits, == str(imagehash.phash(img))
    dct256: str | None = None              # 64 hex digits: the 256-bit hash used for matching
    pdq: str | None = None                 # 64 hex digits: Meta's PDQ, as ThreatExchange writes it
    pdq_quality: int | None = None         # 0-100: PDQ's own quality (low: a flat image, a weak hash)
    known_matches: list[dict] | None = None  # with --known-hashes: entries matched (list, label, hash, kind, distance)
    cluster: int | None = None             # shared by every file that is the same photo
    cluster_size: int | None = None
    group_gan_score: float | None = None   # the highest gan_score among the group's files (the copies share it)
    seen_before: bool | None = None        # the photo was already in the persistent index
    seen_in: list[str] | None = None       # where: "scan-name:path" of earlier copies (first few)
    verdict: str | None = None             # gan | real | no_face | error
    gan_score: float | None = None
    eye_score: float | None = None
    spectral_score: float | None = None    # None when the shipped fusion does not use the spectral detector
    backbone_score: float | None = None    # the fine-tuned backbone's score (facecheck.backbone)
    eyes: list[list[float]] | None = None  # [[x, y], [x, y]]: left then right eye as seen, px
    on_template: bool | None = None        # both eyes where StyleGAN puts them; None without a face
    faces: int | None = None               # faces found; the dominant one is scored
    depth: str | None = None               # how far the cascade went: "cheap", "eyes" or "full" (facecheck.cascade)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # decoder and file-name warnings, with no effect on the verdict

    def to_dict(self) -> dict:
        # A shallow view, serialised at once and never mutated: dataclasses.asdict's deep copy cost
        # ~0.2 ms a row, twice per row when the results are written.
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


FIELD_NAMES = [f.name for f in fields(Result)]


def csv_row(result: Result) -> dict:
    """Flat values for CSV: lists become JSON text."""
    row = result.to_dict()
    for key in ("eyes", "seen_in", "known_matches", "reasons", "warnings"):
        row[key] = "" if row[key] in (None, []) else json.dumps(row[key], ensure_ascii=False)
    return {k: "" if v is None else v for k, v in row.items()}
