"""The labelled development data in ../shared/data: where it is and what it holds.

Used by tests, benchmarks, training scripts and `facecheck eval`; never by the scoring path.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

LABELS = ("stylegan", "real_ffhq", "real_natural", "other_gen")
GAN_LABELS = ("stylegan",)


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    source: str
    generator: str

    @property
    def is_stylegan(self) -> bool:
        return self.label in GAN_LABELS


def data_root() -> Path | None:
    """The shared data folder: $FACECHECK_DATA, else ../shared/data beside the checkout (found from the
    package's own source tree, or from the working directory when facecheck is installed from a wheel
    and run in the checkout, as CI does); None if absent."""
    candidates = []
    if os.environ.get("FACECHECK_DATA"):
        candidates.append(Path(os.environ["FACECHECK_DATA"]))
    # this file is facecheck/evaluation/dataset.py: the checkout is three levels up
    for repo in (Path(__file__).resolve().parents[2], Path.cwd().resolve()):
        candidates += [repo.parent / "shared" / "data", repo / "shared" / "data"]
    for c in candidates:
        if (c / "manifest.csv").is_file():
            return c
    return None


def read_manifest(manifest: Path | None = None) -> list[Sample]:
    """Rows of a manifest CSV (columns file,label[,source,generator]); paths relative to its folder.

    A manifest that cannot be read as labelled data (missing columns, unknown labels, no rows) raises
    ValueError naming the problem, so `facecheck eval` never measures an empty or mislabelled set."""
    if manifest is None:
        root = data_root()
        if root is None:
            raise FileNotFoundError("no labelled data: set FACECHECK_DATA or put shared/data beside the checkout")
        manifest = root / "manifest.csv"
    manifest = Path(manifest)
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest}: a manifest needs the columns file,label[,source,generator]; "
                             f"missing {','.join(missing)} (found: {','.join(reader.fieldnames or []) or 'none'})")
        rows = [row for row in reader if (row.get("file") or "").strip()]
    if not rows:
        raise ValueError(f"{manifest}: no rows with a file")
    unknown = sorted({row["label"] for row in rows} - set(LABELS))
    if unknown:
        raise ValueError(f"{manifest}: unknown label(s) {', '.join(repr(u) for u in unknown)}; "
                         f"labels are {', '.join(LABELS)}")
    # without a source column each label is one source, as in a <label>/ folder without source subfolders
    return [Sample(manifest.parent / row["file"].strip(), row["label"], row.get("source") or row["label"],
                   row.get("generator") or "") for row in rows]


def split_of(sample: Sample, folds: int = 5) -> int:
    """A fixed fold number from the file name, so every script agrees on held-out data."""
    import hashlib
    return int(hashlib.sha1(sample.path.name.encode()).hexdigest(), 16) % folds
