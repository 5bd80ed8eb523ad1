"""Writers of the results files: results.jsonl (one JSON object per file) and results.csv, and
results.partial.jsonl, the rows of a scan in progress as each batch completes; and the reader of
results.jsonl."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from .result import FIELD_NAMES, Result, csv_row


def write_results(results: Iterable[Result], out_dir: Path) -> int:
    """Write DIR/results.jsonl and DIR/results.csv side by side, each atomically (temp file, then
    rename), so a reader never sees half a file. Returns the number of rows."""
    jsonl_tmp, csv_tmp = out_dir / ".results.jsonl.tmp", out_dir / ".results.csv.tmp"
    n = 0
    with open(jsonl_tmp, "w", encoding="utf-8") as fj, open(csv_tmp, "w", newline="", encoding="utf-8") as fc:
        writer = csv.DictWriter(fc, fieldnames=FIELD_NAMES)
        writer.writeheader()
        for result in results:
            fj.write(result.to_json() + "\n")
            writer.writerow(csv_row(result))
            n += 1
    os.replace(jsonl_tmp, out_dir / "results.jsonl")
    os.replace(csv_tmp, out_dir / "results.csv")
    return n


def read_results(out_dir: Path) -> Iterator[Result]:
    """The rows of DIR/results.jsonl, one Result at a time (a million rows never sit in memory)."""
    with open(out_dir / "results.jsonl", encoding="utf-8") as f:
        for line in f:
            yield Result.from_dict(json.loads(line))


PARTIAL_NAME = "results.partial.jsonl"


class PartialResults:
    """DIR/results.partial.jsonl: rows appended (and flushed) batch by batch while a scan runs, so a
    long scan can be read before it ends. Reuse-group fields are not known yet there; the final
    results.jsonl replaces it. After an interruption it may repeat or miss the last batch's rows (the
    state in DIR/state.sqlite is what a rerun resumes from)."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / PARTIAL_NAME
        self.file = open(self.path, "a", encoding="utf-8")

    def add(self, results: Iterable[Result]) -> None:
        for result in results:
            self.file.write(result.to_json() + "\n")
        self.file.flush()

    def close(self, remove: bool = False) -> None:
        self.file.close()
        if remove:
            self.path.unlink(missing_ok=True)
