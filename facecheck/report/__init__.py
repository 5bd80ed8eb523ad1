"""DIR/report.html: a self-contained, printable summary of a scan for the people who hand it on.

Three steps, one module each: `builder` makes one streaming pass over the results and keeps only
bounded things (so a million-file scan builds its report in flat memory); `view` turns what was kept
into a plain view model (text, numbers, thumbnails as data: URIs); `render` fills the Jinja2 template
in templates/, which escapes every value (file names are attacker-controlled). Nothing in the page
reaches the network: images are data URIs, there is no script, and a Content-Security-Policy forbids
both.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..result import Result
from .builder import ReportBuilder

__all__ = ["REPORT_NAME", "ReportBuilder", "write_report"]

REPORT_NAME = "report.html"


def write_report(out_dir: Path, results: Iterable[Result], *, folder: Path | None, settings: dict,
                 summary: dict, template=None, **limits) -> Path:
    """Write out_dir/report.html (atomically: temp file, then rename) from one pass over `results`.

    folder: the scanned folder, where thumbnails are read (paths in results are relative to it);
    None draws placeholders. settings: a plain dict, shown as it is. summary: keys files, scanned,
    errors, gan, groups, grouped_files, seen_before, and the timings seconds, analysis_seconds,
    grouping_seconds, report_seconds (pipeline.run.ScanSummary); those that can be counted from the results
    are counted, so the page agrees with itself; the others are shown with readable labels.
    template: an EyeTemplate, default the shipped one. limits: max_flagged, max_groups, max_members,
    max_listed, max_average, max_review (see ReportBuilder)."""
    if template is None:
        from ..geometry import EyeTemplate
        template = EyeTemplate.load()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = ReportBuilder(folder, template, **limits)
    for result in results:
        builder.add(result)
    page = builder.html(dict(settings or {}), dict(summary or {}))
    target = out_dir / REPORT_NAME
    tmp = out_dir / f".{REPORT_NAME}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
