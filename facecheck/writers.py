"""Writers of the results files: results.jsonl (one JSON object per file) and results.csv."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable

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
