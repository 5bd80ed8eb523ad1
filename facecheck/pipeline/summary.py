"""What a scan did: counts, where its time went, and whether its --index was updated."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScanSummary:
    files: int = 0
    scanned: int = 0                     # decoded in this run
    rejudged: int = 0                    # kept from an earlier run (unchanged) and judged again at this run's settings
    errors: int = 0
    gan: int = 0
    stopped_early: int = 0               # files the cascade did not take to its last stage (facecheck.cascade)
    groups: int = 0
    grouped_files: int = 0
    seen_before: int = 0
    index_error: str | None = None       # the --index failed after the scan's checks: it was not updated
    seconds: float = 0.0
    # where the time went: decoding and analysing every file, then what runs once the last file is in
    analysis_seconds: float = 0.0        # from the start until the last file's signals are saved
    grouping_seconds: float = 0.0        # reuse groups, the known index, results.jsonl/csv (finish)
    report_seconds: float = 0.0          # report.html
