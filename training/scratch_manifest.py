"""Manifests of generated training images under scratch/, in ../shared/data/manifest.csv's columns, appended one row
per finished image so that an interrupted generation script resumes. Never imported by facecheck."""
from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = ("file", "label", "source", "generator", "source_repo", "path_in_repo", "orig_width", "orig_height",
           "orig_format", "width", "height", "notes")


def finished_rows(manifest: Path) -> list[dict]:
    """The manifest's rows; a last row cut short by a kill is removed from the file (its image is redone)."""
    if not manifest.is_file():
        return []
    text = manifest.read_bytes()
    if text and not text.endswith(b"\n"):
        manifest.write_bytes(text[:text.rfind(b"\n") + 1])
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def appender(manifest: Path, columns=COLUMNS):
    """(file, csv.DictWriter) appending to the manifest, with the header written when the file is new."""
    new = not manifest.is_file() or manifest.stat().st_size == 0
    f = open(manifest, "a", newline="")
    writer = csv.DictWriter(f, columns)
    if new:
        writer.writeheader()
        f.flush()
    return f, writer
