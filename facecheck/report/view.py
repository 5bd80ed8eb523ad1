"""The view model of report.html: what a ReportBuilder kept, as plain values for the template.

Everything here is data (strings, numbers, lists, `pictures.Picture`); the template turns it into
markup and escapes every value, so file names, reasons and settings (attacker-controlled or not)
never become markup. Thumbnails are read here, only for what the page shows.
"""
from __future__ import annotations

import time

from ..result import Result
from ..verdict import MODES, ON_TEMPLATE_CAVEAT, brief_caveat, operating_point
from . import pictures
from .words import count, duration, left_out, score, value_lines, whole

THUMB_SIDE = 160           # px, longer side of gallery thumbnails
FLAGGED_SIDE = 200         # px, longer side of flagged-face pictures
LIST_SIDE = 120            # px, longer side of the thumbnails in the hash-list matches table

# The counts table: what each summary key means to a reader, in the order shown. Keys that can be
# counted from the results are counted (what the rows show wins, so the page agrees with itself).
COUNT_LABELS = {
    "files": "Files in the folder",
    "scanned": "Files read in this run",
    "rejudged": "Files kept from an earlier run (unchanged) and judged again at this run's settings",
    "gan": "Flagged as StyleGAN faces",
    "to_review": "Not flagged, but eyes where StyleGAN puts them (to look at)",
    "groups": "Groups of reused photos",
    "grouped_files": "Files in those groups",
    "seen_before": "Photos already seen in earlier scans",
    "known": "Files matching an imported hash list (--known-hashes)",
    "errors": "Files that could not be read",
    "index_error": "The --index was NOT updated",
}
# The timings, as pipeline.run.ScanSummary names them. The scan's clock stops when the report begins, so
# "seconds" is the scan without this report, and the report's own time is known only afterwards.
TIME_LABELS = {
    "seconds": "Scan time (until this report was begun)",
    "analysis_seconds": "of which reading and analysing the files",
    "grouping_seconds": "of which grouping reused photos and writing results.jsonl / .csv",
    "report_seconds": "Writing this report",
}
REPORT_TIME_UNKNOWN = "not counted above: it was being written when these times were taken"
VERDICT_NAMES = {"gan": "gan (flagged)", "real": "real", "no_face": "no face found", "error": "error",
                 "undecided": "no verdict yet"}


def page_view(builder, settings: dict, summary: dict) -> dict:
    """Everything the template shows, from a ReportBuilder after its pass over the results."""
    from .. import __version__
    title = "facecheck report" + (f": {builder.folder.name}" if builder.folder is not None else "")
    return {
        "title": title,
        "folder": str(builder.folder) if builder.folder is not None else None,
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "version": __version__,
        "operating_point": _operating_point(settings),
        "contents": _contents(builder),
        "counts": _counts(builder, summary),
        "flagged": _flagged(builder),
        "review": _review(builder, settings),
        "average": _average(builder),
        "heatmap": _heatmap(builder),
        "groups": _groups(builder),
        "seen": _file_list(builder.seen_list, builder.seen_before, "seen_before = true",
                           lambda r: list(r.seen_in or [])),
        "known": _file_list(builder.known_list, builder.known, "known_matches not empty",
                            lambda r: [f"{m['list']}: {m['label'] or '(no label)'}, {m['kind']}, {m['distance']} bits"
                                       for m in r.known_matches or []],
                            picture=lambda r: pictures.picture(builder.folder, r, LIST_SIDE)),
        "errors": _file_list(builder.error_list, builder.errors, "error not empty", lambda r: [r.error or ""]),
        "settings": [(str(k), value_lines(v)) for k, v in settings.items()],
        "eye_template": {"left": _position(builder.template.left_eye), "right": _position(builder.template.right_eye)},
    }


def _position(xy) -> str:
    return f"({xy[0]:.4f}, {xy[1]:.4f})"


def _operating_point(settings: dict) -> dict | None:
    """The mode's promise and its threshold, said once in the head and once in the settings."""
    mode = settings.get("mode")
    if mode not in MODES:
        return None
    threshold = (settings.get("thresholds (gan_score)") or {}).get(mode)   # as pipeline.finish.settings_record names it
    return {"text": operating_point(mode),
            "threshold": f"{threshold:.3f}" if isinstance(threshold, (int, float)) else None}


def _contents(builder) -> list[tuple[str, str]]:
    links = [("counts", "Counts"), ("flagged", "Flagged faces")]
    if builder.to_review:
        links.append(("review", "Faces to look at"))
    links += [("average", "Average face"), ("heatmap", "Where the eyes are"), ("groups", "Reused photos")]
    if builder.seen_before:
        links.append(("seen", "Seen in earlier scans"))
    if builder.known:
        links.append(("known", "In imported hash lists"))
    if builder.errors:
        links.append(("errors", "Unreadable files"))
    links.append(("settings", "Settings"))
    return links


def _counts(builder, summary: dict) -> list[tuple[str, str]]:
    """(label, value) rows: the counts, the timings, any other summary key, and the verdicts."""
    counted = {"files": builder.rows, "errors": builder.errors, "gan": builder.flagged, "to_review": builder.to_review,
               "groups": builder.max_cluster, "grouped_files": builder.grouped_files, "seen_before": builder.seen_before,
               "known": builder.known}
    rows = []
    for key, label in COUNT_LABELS.items():
        value = counted[key] if key in counted else summary.get(key)
        if value is not None:
            rows.append((label, whole(value)))
    for key, label in TIME_LABELS.items():
        value = summary.get(key)
        if key == "report_seconds" and key in summary and not value:
            rows.append((label, REPORT_TIME_UNKNOWN))   # 0: not measured yet, not instantaneous
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((label, duration(float(value))))
    for key, value in summary.items():
        if key not in COUNT_LABELS and key not in TIME_LABELS:
            rows.append(_readable(key, value))
    verdicts = ", ".join(f"{VERDICT_NAMES.get(k, k)}: {whole(v)}"
                         for k, v in sorted(builder.verdicts.items(), key=lambda kv: -kv[1]))
    rows.append(("Verdicts in the results", verdicts or "none"))
    return rows


def _readable(key: str, value) -> tuple[str, str]:
    """A summary entry this page has no label for: its name in words, a timing as a duration."""
    words = str(key).replace("_", " ")
    if str(key).endswith("_seconds") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return (f"Time: {words[: -len(' seconds')]}", duration(float(value)))
    return (words[:1].upper() + words[1:], "; ".join(value_lines(value)))


def _card(builder, r: Result, brief: bool) -> dict:
    """A card: picture with the template drawn over it, path, copies, scores, reasons.
    brief: the section explains the on-template caveat, so the card cuts it short."""
    reasons = [x for x in map(brief_caveat, r.reasons or []) if x] if brief else list(r.reasons or [])
    scores = [("gan_score", score(r.gan_score)), ("eye_score", score(r.eye_score)),
              ("backbone_score", score(r.backbone_score))]
    if r.spectral_score is not None:
        scores.append(("spectral_score", score(r.spectral_score)))
    copies = None
    if r.cluster is not None and r.cluster_size and r.cluster_size >= 2:
        copies = {"others": count(r.cluster_size - 1, "copy", "copies"), "cluster": r.cluster,
                  "linked": builder.shows_group(r.cluster)}
    return {"picture": pictures.picture(builder.folder, r, FLAGGED_SIDE, builder.template), "path": r.path,
            "copies": copies, "scores": scores, "size": _size(r), "reasons": reasons,
            "seen_in": list(r.seen_in or [])}


def _size(r: Result) -> str | None:
    return f"{r.width}\u00d7{r.height}" if r.width else None


def _flagged(builder) -> dict:
    return {"files": builder.flagged,
            "summary": builder.flagged_cards.summary("flagged file", "verdict = gan") if builder.flagged else None,
            "cards": [_card(builder, r, brief=False) for r in builder.flagged_cards.shown()]}


def _review(builder, settings: dict) -> dict | None:
    """Faces on the template that were not flagged: a person should look at them (none: no section)."""
    if not builder.to_review:
        return None
    mode = settings.get("mode")
    return {"mode": mode if mode in MODES else None,
            "summary": builder.review_cards.summary("face", f'reasons contain "{ON_TEMPLATE_CAVEAT}"'),
            "cards": [_card(builder, r, brief=True) for r in builder.review_cards.shown()]}


def _average(builder) -> dict:
    img = builder.average_image()
    if img is None:
        why = ("no file was flagged" if not builder.flagged else
               "the flagged files could not be read from the scanned folder")
        return {"why_none": why}
    if builder.avg_count == builder.flagged:
        which = "the one flagged face" if builder.avg_count == 1 else f"all {whole(builder.avg_count)} flagged faces"
    else:
        notes = []
        if builder.avg_tried < builder.flagged:
            notes.append(f"the first {whole(builder.avg_tried)} in scan order were used")
        if builder.avg_failed:
            notes.append(f"{whole(builder.avg_failed)} could not be read")
        which = f"{whole(builder.avg_count)} of the {count(builder.flagged, 'flagged face')} ({'; '.join(notes)})"
    return {"why_none": None, "uri": pictures.jpeg_uri(img, quality=92), "side": img.width, "which": which,
            "overlay": pictures.overlay(img.width, img.height, builder.template, None)}


def _heatmap(builder) -> dict | None:
    if not builder.faces:
        return None
    return {"uri": pictures.png_uri(pictures.heatmap_image(builder.hist)), "side": pictures.HEATMAP_SIDE,
            "overlay": pictures.overlay(1.0, 1.0, builder.template, None, grid=True),
            "faces": count(builder.faces, "face"), "on_template": whole(builder.on_template),
            "one": builder.on_template == 1, "share": f"{builder.on_template / builder.faces:.0%}",
            "within": f"{builder.on_template_within:.0%}", "swatches": pictures.ramp_swatches()}


def _groups(builder) -> dict | None:
    groups = builder.groups_shown()
    if not groups:
        return None
    shown = []
    for g in groups:
        members = []
        for r in g.members:
            members.append({"picture": pictures.picture(builder.folder, r, THUMB_SIDE), "path": r.path,
                            "flagged": r.verdict == "gan", "size": _size(r), "seen_in": list(r.seen_in or [])})
        shown.append({"cluster": g.cluster, "files": whole(g.size), "members": members,
                      "box": max(m["picture"].shown_height for m in members),
                      "more": count(g.size - len(g.members), "more file") if g.size > len(g.members) else None})
    return {"intro": left_out(len(groups), builder.max_cluster, "group", "the largest first", "cluster"),
            "groups": shown}


def _file_list(shown: list[Result], total: int, column: str, cell, picture=None) -> dict | None:
    """A table of the first files of a kind (path, one more column, and a thumbnail where `picture`
    makes one), or None when there are none."""
    if not total:
        return None
    return {"intro": left_out(len(shown), total, "file", "in scan order", column), "pictures": picture is not None,
            "rows": [{"path": r.path, "lines": cell(r), "picture": picture(r) if picture else None}
                     for r in shown]}
