"""DIR/report.html: a self-contained, printable summary of a scan for the people who hand it on.

One streaming pass over the results (an iterator of `Result`, as long as the scan) keeps only
bounded things, so a million-file scan builds its report in flat memory:
- the `max_flagged` flagged photos (verdict "gan") with the highest gan_score, one card per reuse
  group (its best file, "+N copies"), so copies of one face cannot fill the gallery (`_Cards`);
- the same, up to `max_review`, for faces to look at: not flagged, but with their eyes where StyleGAN
  puts them (the rows whose reasons carry verdict.on_template_caveat);
- the `max_groups` largest reuse groups, each with its first `max_members` files;
- the first `max_listed` files already seen in earlier scans and the first files that failed;
- a fixed `HIST_BINS` x `HIST_BINS` histogram of eye positions (x / width, y / height) over every
  face, whatever its verdict: StyleGAN faces pile up on the template;
- a running sum of the flagged images resized to `AVERAGE_SIDE` square (the first `max_average`):
  StyleGAN faces are aligned, so their mean is sharp around the eyes;
- counters.
Thumbnails (JPEG data URIs) are read from the scanned folder only for what is shown. Nothing in the
page reaches the network: images are data URIs, there is no script, and a Content-Security-Policy
forbids both. Every path and text from the results is escaped: file names are attacker-controlled.
"""
from __future__ import annotations

import base64
import heapq
import html
import io
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

import numpy as np
from PIL import Image

from .loading import LoadError, load_image
from .result import Result
from .verdict import MODES, ON_TEMPLATE_CAVEAT, brief_caveat, has_on_template_caveat, operating_point

REPORT_NAME = "report.html"
THUMB_SIDE = 160           # px, longer side of gallery thumbnails
FLAGGED_SIDE = 200         # px, longer side of flagged-face pictures
AVERAGE_SIDE = 256         # the average face is computed at this size
HIST_BINS = 100            # eye-position histogram: bins per axis over the frame
HEATMAP_SIDE = 400         # px of the rendered heatmap
ON_TEMPLATE = 0.02         # "on the template": mean eye distance under 2% of the image width
THUMB_MAX_PIXELS = 50_000_000
THUMB_MAX_BYTES = 64 * 1024 * 1024

# Colour ramp of the heatmap (light to dark, prints well): white for empty bins.
_RAMP = np.array([(255, 255, 255), (255, 237, 160), (254, 178, 76), (240, 59, 32), (128, 0, 38)], float)


@dataclass
class _Group:
    cluster: int
    size: int
    members: list[Result] = field(default_factory=list)


class _Cards:
    """The `limit` best photos among the rows added (highest gan_score, then eye_score, then the first
    in scan order), one card per reuse group: a group is shown by its best file. Memory is bounded by
    `limit`, whatever the number of rows."""

    def __init__(self, limit: int):
        self.limit = limit
        self.files = 0
        self.complete = True                       # no photo was left out
        self._heap: list[tuple] = []               # (gan_score, eye_score, -seq, Result): the worst first
        self._of_cluster: dict[int, tuple] = {}    # cluster -> its entry in the heap
        self._seq = itertools.count()

    def add(self, r: Result) -> None:
        self.files += 1
        entry = (_num(r.gan_score), _num(r.eye_score), -next(self._seq), r)   # -seq is unique: r is never compared
        held = self._of_cluster.get(r.cluster) if r.cluster is not None else None
        if held is not None:
            if entry[:3] > held[:3]:   # a better file of a group already shown takes its card
                self._heap[self._heap.index(held)] = entry
                heapq.heapify(self._heap)
                self._of_cluster[r.cluster] = entry
            return
        # A group evicted here had its best file so far below every kept card; the threshold only
        # rises, so a later file of it gets a card only by beating that threshold, as it should.
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, entry)
        elif entry[:3] > self._heap[0][:3]:
            dropped = heapq.heapreplace(self._heap, entry)[3]
            self._of_cluster.pop(dropped.cluster, None)
            self.complete = False
        else:
            self.complete = False
            return
        if r.cluster is not None:
            self._of_cluster[r.cluster] = entry

    def shown(self) -> list[Result]:
        """The kept files, best first."""
        return [entry[3] for entry in sorted(self._heap, key=lambda e: e[:3], reverse=True)]

    def summary(self, what: str, column: str) -> str:
        """One sentence: how many of the files are shown, and how copies share a card."""
        cards = len(self._heap)
        if not self.complete:
            return (f"Showing the {_count(cards, 'photo')} with the highest gan_score among the "
                    f"{_count(self.files, what)}, one card per reuse group; the rest are listed in results.jsonl "
                    f"and results.csv ({_e(column)}).")
        if cards == self.files:
            return (f"The only {what} is shown." if cards == 1 else
                    f"All {_count(cards, what)} are shown, the highest gan_score first.")
        return (f"All {_count(self.files, what)} are shown, as {_count(cards, 'card')}: copies of one photo "
                "(a reuse group) share one card, the highest gan_score first.")


class ReportBuilder:
    """Consumes results one by one (`add`), then renders the page (`html`). Memory is bounded by
    the limits given here, never by the number of results."""

    def __init__(self, folder: Path | None, template, *, max_flagged: int = 60, max_groups: int = 30,
                 max_members: int = 12, max_listed: int = 50, max_average: int = 5000, max_review: int = 60):
        self.folder = Path(folder) if folder is not None else None
        self.template = template
        self.max_flagged, self.max_groups, self.max_members = max_flagged, max_groups, max_members
        self.max_listed, self.max_average = max_listed, max_average
        self.rows = 0
        self.verdicts: dict[str, int] = {}
        self.flagged_cards = _Cards(max_flagged)
        self.review_cards = _Cards(max_review)   # not flagged, eyes on the template: to look at
        self._groups: dict[int, _Group] = {}           # kept groups
        self._group_heap: list[tuple[int, int]] = []   # (size, -cluster) of kept groups: the smallest first
        self.max_cluster = 0
        self.grouped_files = 0
        self.seen_before = 0
        self.seen_list: list[Result] = []
        self.known = 0                                 # files that matched an imported hash list
        self.known_list: list[Result] = []
        self.errors = 0
        self.error_list: list[Result] = []
        self.faces = 0
        self.on_template = 0
        self.hist = np.zeros((HIST_BINS, HIST_BINS), np.int64)   # [y bin, x bin]
        self.avg_sum = np.zeros((AVERAGE_SIDE, AVERAGE_SIDE, 3), np.float64)
        self.avg_count = 0       # images in avg_sum
        self.avg_tried = 0       # at most max_average: the first flagged files in scan order
        self.avg_failed = 0

    # ---- the streaming pass -------------------------------------------------------------------

    def add(self, r: Result) -> None:
        self.rows += 1
        verdict = r.verdict or "undecided"
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        if r.error is not None:
            self.errors += 1
            if len(self.error_list) < self.max_listed:
                self.error_list.append(r)
        if r.seen_before:
            self.seen_before += 1
            if len(self.seen_list) < self.max_listed:
                self.seen_list.append(r)
        if r.known_matches:
            self.known += 1
            if len(self.known_list) < self.max_listed:
                self.known_list.append(r)
        self._add_eyes(r)
        if r.cluster is not None:
            self._add_to_group(r)
        if r.verdict == "gan":
            self._add_flagged(r)
        elif has_on_template_caveat(r.reasons):
            self.review_cards.add(r)

    @property
    def flagged(self) -> int:
        return self.flagged_cards.files

    @property
    def to_review(self) -> int:
        return self.review_cards.files

    def _add_eyes(self, r: Result) -> None:
        if not r.eyes or len(r.eyes) != 2 or not r.width or not r.height:
            return
        try:
            w, h = float(r.width), float(r.height)
            (lx, ly), (rx, ry) = ((float(x), float(y)) for x, y in r.eyes)
        except (TypeError, ValueError):
            return   # a malformed row (old or edited results) is left out of the heatmap
        self.faces += 1
        for x, y in ((lx, ly), (rx, ry)):
            fx, fy = x / w, y / h
            if 0.0 <= fx < 1.0 and 0.0 <= fy < 1.0:
                self.hist[int(fy * HIST_BINS), int(fx * HIST_BINS)] += 1
        t = self.template
        distance = (math.hypot(lx - t.left_eye[0] * w, ly - t.left_eye[1] * h)
                    + math.hypot(rx - t.right_eye[0] * w, ry - t.right_eye[1] * h)) / 2 / w
        self.on_template += distance < ON_TEMPLATE

    def _add_to_group(self, r: Result) -> None:
        self.grouped_files += 1
        self.max_cluster = max(self.max_cluster, r.cluster)
        group = self._groups.get(r.cluster)
        if group is None:
            size = r.cluster_size or 0
            key = (size, -r.cluster)
            if len(self._groups) >= self.max_groups:
                # Sizes never change, so the smallest kept group only grows: a group refused at
                # its first file is refused at every later one, and a kept group has all its files.
                if key <= self._group_heap[0]:
                    return
                _, neg = heapq.heappop(self._group_heap)
                del self._groups[-neg]
            heapq.heappush(self._group_heap, key)
            group = self._groups[r.cluster] = _Group(r.cluster, size)
        if len(group.members) < self.max_members:
            group.members.append(r)

    def _add_flagged(self, r: Result) -> None:
        self.flagged_cards.add(r)
        if self.folder is not None and self.avg_tried < self.max_average:
            self.avg_tried += 1
            img = self._open(r.path, min_side=AVERAGE_SIDE)
            if isinstance(img, Image.Image):
                small = img.resize((AVERAGE_SIDE, AVERAGE_SIDE), Image.BILINEAR, reducing_gap=2.0)
                self.avg_sum += np.asarray(small, np.float64)
                self.avg_count += 1
            else:
                self.avg_failed += 1

    # ---- images from the scanned folder ---------------------------------------------------------

    def _open(self, rel: str, min_side: int) -> Image.Image | str:
        """The file as an RGB image (EXIF-oriented), or a short reason why not."""
        if self.folder is None:
            return "scanned folder not given"
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            return "path outside the scanned folder"
        try:
            loaded = load_image(self.folder.joinpath(*parts), max_pixels=THUMB_MAX_PIXELS,
                                max_bytes=THUMB_MAX_BYTES, min_side=min_side)
            return loaded.image
        except LoadError as e:
            return str(e)
        except Exception as e:   # a thumbnail must never end the report
            return f"unexpected {type(e).__name__}"

    def _picture(self, r: Result, side: int, overlay: bool = False) -> str:
        return self._picture_sized(r, side, overlay)[0]

    def _picture_sized(self, r: Result, side: int, overlay: bool = False) -> tuple[str, int]:
        """HTML of the picture (or a placeholder saying why there is none) and its height in px."""
        img = self._open(r.path, min_side=side)
        if not isinstance(img, Image.Image):
            return (f'<div class="missing" style="width:{side}px;height:{side}px">'
                    f'<span>image not available<br>{_e(_short(img, 80))}</span></div>', side)
        full_w, full_h = r.width or img.width, r.height or img.height
        thumb = img.copy()
        thumb.thumbnail((side, side), Image.LANCZOS)
        tag = f'<img src="{_jpeg_uri(thumb)}" width="{thumb.width}" height="{thumb.height}" alt="">'
        if not overlay:
            return f'<div class="pic">{tag}</div>', thumb.height
        svg = _overlay_svg(full_w, full_h, self.template, r.eyes)
        return (f'<div class="pic" style="width:{thumb.width}px;height:{thumb.height}px">{tag}{svg}</div>',
                thumb.height)

    # ---- rendering --------------------------------------------------------------------------------

    def html(self, settings: dict, summary: dict) -> str:
        title = "facecheck report" + (f": {self.folder.name}" if self.folder is not None else "")
        parts = [_HEAD.format(title=_e(title), css=_CSS),
                 f"<h1>{_e(title)}</h1>",
                 self._intro(settings),
                 self._contents(),
                 self._counts(summary),
                 self._flagged_section(),
                 self._review_section(settings),
                 self._average_section(),
                 self._heatmap_section(),
                 self._groups_section(),
                 self._seen_section(),
                 self._known_section(),
                 self._errors_section(),
                 self._settings_section(settings),
                 "</main></body></html>\n"]
        return "\n".join(p for p in parts if p)

    def _intro(self, settings: dict) -> str:
        folder = _e(str(self.folder)) if self.folder is not None else "(not given)"
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        from . import __version__
        return (f'<p class="meta">Folder scanned: <code>{folder}</code><br>Report written {when} by '
                f"facecheck {_e(__version__)}. This file is self-contained: the pictures are embedded "
                f"and it loads nothing from the network.</p>"
                '<p class="note"><b>How to read this report.</b> facecheck flags a face as likely made by '
                "StyleGAN (the &ldquo;this person does not exist&rdquo; generator) from where its eyes "
                "sit in the frame and from what detectors trained on StyleGAN faces see in its pixels, and finds photos "
                "reused across accounts. A flag is a lead to verify, not proof: check each picture before "
                "naming anyone. The full list of files, with every score, is in <code>results.jsonl</code> "
                "and <code>results.csv</code> beside this report.</p>" + _operating_point(settings, "p"))

    def _contents(self) -> str:
        links = [("counts", "Counts"), ("flagged", "Flagged faces")]
        if self.to_review:
            links.append(("review", "Faces to look at"))
        links += [("average", "Average face"), ("heatmap", "Where the eyes are"), ("groups", "Reused photos")]
        if self.seen_before:
            links.append(("seen", "Seen in earlier scans"))
        if self.known:
            links.append(("known", "In imported hash lists"))
        if self.errors:
            links.append(("errors", "Unreadable files"))
        links.append(("settings", "Settings"))
        return ('<nav class="toc">Contents: ' + " &middot; ".join(f'<a href="#{k}">{t}</a>' for k, t in links)
                + "</nav>")

    def _counts(self, summary: dict) -> str:
        counted = {"files": self.rows, "errors": self.errors, "gan": self.flagged, "to_review": self.to_review,
                   "groups": self.max_cluster, "grouped_files": self.grouped_files,
                   "seen_before": self.seen_before, "known": self.known}
        labels = [("files", "Files in the folder"), ("scanned", "Files read in this run"), ("gan", "Flagged as StyleGAN faces"),
                  ("to_review", "Not flagged, but eyes where StyleGAN puts them (to look at)"),
                  ("groups", "Groups of reused photos"), ("grouped_files", "Files in those groups"),
                  ("seen_before", "Photos already seen in earlier scans"),
                  ("known", "Files matching an imported hash list (--known-hashes)"),
                  ("errors", "Files that could not be read"), ("seconds", "Scan time")]
        rows = []
        for key, label in labels:
            # What the rows show wins over the summary, so the page never contradicts itself.
            value = counted[key] if key in counted else summary.get(key)
            if value is None:
                continue
            if key == "seconds":
                text = _duration(float(value))
            else:
                text = _int(value)
            rows.append(f"<tr><th>{_e(label)}</th><td>{_e(text)}</td></tr>")
        known = {k for k, _ in labels}
        for key, value in summary.items():
            if key not in known:
                rows.append(f"<tr><th>{_e(str(key))}</th><td>{_value(value)}</td></tr>")
        names = {"gan": "gan (flagged)", "real": "real", "no_face": "no face found", "error": "error",
                 "undecided": "no verdict yet"}
        verdicts = ", ".join(f"{_e(names.get(k, k))}: {_int(v)}" for k, v in
                             sorted(self.verdicts.items(), key=lambda kv: -kv[1]))
        rows.append(f"<tr><th>Verdicts in the results</th><td>{verdicts or 'none'}</td></tr>")
        return f'<h2 id="counts">Counts</h2><table class="kv">{"".join(rows)}</table>'

    def _flagged_section(self) -> str:
        out = ['<h2 id="flagged">Faces flagged as StyleGAN</h2>']
        if not self.flagged:
            out.append("<p>No file was flagged as a StyleGAN face.</p>")
            return "\n".join(out)
        out.append(f"<p>{self.flagged_cards.summary('flagged file', 'verdict = gan')}"
                   " On each picture the <span class=\"tpl\">blue rings</span> mark where StyleGAN puts "
                   "the eyes and the <span class=\"eye\">red dots</span> where facecheck found them.</p>")
        out.append(self._cards(self.flagged_cards))
        return "\n".join(out)

    def _review_section(self, settings: dict) -> str:
        """Faces on the template that were not flagged: a person should look at them (none: no section)."""
        if not self.to_review:
            return ""
        mode = settings.get("mode")
        at = f" of the {_e(mode)} mode" if mode in MODES else ""
        column = f'reasons contain "{ON_TEMPLATE_CAVEAT}"'
        return "\n".join([
            '<h2 id="review">Faces to look at: eyes where StyleGAN puts them, not flagged</h2>',
            f"<p>These faces sit on the StyleGAN eye template, but their gan_score stayed under the threshold{at}: "
            "each is either a StyleGAN face whose pixels did not give it away or a real photo aligned the "
            "way face datasets (FFHQ) align them. Their verdict is <code>real</code>, which here means "
            f"&ldquo;not shown to be generated&rdquo;: look at each. {self.review_cards.summary('face', column)}</p>",
            self._cards(self.review_cards, brief=True)])

    def _cards(self, cards: _Cards, brief: bool = False) -> str:
        """The cards of a gallery: picture with the template drawn over it, path, scores, reasons, copies.
        brief: the section explains the on-template caveat, so the cards cut it short."""
        out = ['<div class="cards">']
        for r in cards.shown():
            reasons = [b for b in map(brief_caveat, r.reasons) if b] if brief else r.reasons
            out.append('<div class="card">' + self._picture(r, FLAGGED_SIDE, overlay=True)
                       + f'<div class="path">{_e(r.path)}</div>'
                       + self._copies(r)
                       + '<table class="scores">'
                       + f"<tr><th>gan_score</th><td>{_score(r.gan_score)}</td></tr>"
                       + f"<tr><th>eye_score</th><td>{_score(r.eye_score)}</td></tr>"
                       + f"<tr><th>backbone_score</th><td>{_score(r.backbone_score)}</td></tr>"
                       + (f"<tr><th>spectral_score</th><td>{_score(r.spectral_score)}</td></tr>"
                          if r.spectral_score is not None else "")
                       + (f"<tr><th>size</th><td>{r.width}&times;{r.height}</td></tr>" if r.width else "")
                       + "</table>" + _reasons(reasons) + _seen_in(r) + "</div>")
        out.append("</div>")
        return "\n".join(out)

    def _copies(self, r: Result) -> str:
        """"+N copies" on the card of a reused photo, linked to its gallery when the report shows it."""
        if r.cluster is None or not r.cluster_size or r.cluster_size < 2:
            return ""
        others = _count(r.cluster_size - 1, "copy", "copies")
        group = (f'<a href="#group-{r.cluster}">reuse group #{r.cluster}</a>' if r.cluster in self._groups
                 else f"reuse group #{r.cluster}")
        return f'<div class="copies">+{others} in this scan ({group})</div>'

    def _average_section(self) -> str:
        out = ['<h2 id="average">Average of the flagged faces</h2>']
        if not self.avg_count:
            why = ("no file was flagged" if not self.flagged else
                   "the flagged files could not be read from the scanned folder")
            out.append(f"<p>No average: {why}.</p>")
            return "\n".join(out)
        mean = np.clip(self.avg_sum / self.avg_count + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(mean)
        svg = _overlay_svg(AVERAGE_SIDE, AVERAGE_SIDE, self.template, None)
        if self.avg_count == self.flagged:
            which = "the one flagged face" if self.avg_count == 1 else f"all {_int(self.avg_count)} flagged faces"
        else:
            notes = []
            if self.avg_tried < self.flagged:
                notes.append(f"the first {_int(self.avg_tried)} in scan order were used")
            if self.avg_failed:
                notes.append(f"{_int(self.avg_failed)} could not be read")
            which = f"{_int(self.avg_count)} of the {_count(self.flagged, 'flagged face')} ({'; '.join(notes)})"
        out.append(_figure(_jpeg_uri(img, quality=92), AVERAGE_SIDE, "average of the flagged faces", svg,
                           f"<p>The pixel-by-pixel average of {which}, each whole picture resized to "
                           f"{AVERAGE_SIDE}&times;{AVERAGE_SIDE} with no alignment. StyleGAN draws every face in "
                           "the same position, so the average of its faces stays sharp around the eyes, on the "
                           "blue rings; the average of ordinary photos is a blur.</p>"))
        return "\n".join(out)

    def _heatmap_section(self) -> str:
        out = ['<h2 id="heatmap">Where the eyes are</h2>']
        if not self.faces:
            out.append("<p>No face was found in the folder.</p>")
            return "\n".join(out)
        uri = _png_uri(_heatmap_image(self.hist))
        svg = _overlay_svg(1.0, 1.0, self.template, None, grid=True)
        share = self.on_template / self.faces
        out.append(_figure(uri, HEATMAP_SIDE, "heatmap of eye positions", svg,
                           f"<p>Both eyes of each of the {_count(self.faces, 'face')} found (any verdict), placed as "
                           "fractions of its picture&rsquo;s width and height: the square is the picture frame, "
                           "darker means more eyes (log scale). The <span class=\"tpl\">blue rings</span> are "
                           "where StyleGAN puts the eyes; its faces pile up there, while ordinary photos scatter.</p>"
                           f"<p><b>{_int(self.on_template)} of {_count(self.faces, 'face')} ({share:.0%})</b> "
                           f"{'has its' if self.on_template == 1 else 'have their'} "
                           f"eyes within {ON_TEMPLATE:.0%} of the picture&rsquo;s width of the template positions.</p>"
                           '<p class="legend">' + _ramp_legend() + "</p>", pic_class="pic heat"))
        return "\n".join(out)

    def _groups_section(self) -> str:
        out = ['<h2 id="groups">Reused photos</h2>']
        if not self._groups:
            out.append("<p>No photo appears more than once in the folder.</p>")
            return "\n".join(out)
        groups = sorted(self._groups.values(), key=lambda g: (-g.size, g.cluster))
        out.append(f"<p>Files that are the same photo, even resized, recompressed, cropped a little, mirrored "
                   f"or framed. {_left_out(len(groups), self.max_cluster, 'group', 'the largest first', 'cluster')}</p>")
        for g in groups:
            out.append(f'<div class="group" id="group-{g.cluster}"><h3>Group #{g.cluster}: {_int(g.size)} files</h3>'
                       '<div class="gallery">')
            pictures = [self._picture_sized(r, THUMB_SIDE) for r in g.members]
            box = max(height for _, height in pictures)
            for r, (picture, _) in zip(g.members, pictures):
                flag = ' <span class="badge">flagged StyleGAN</span>' if r.verdict == "gan" else ""
                out.append(f'<div class="item"><div class="box" style="height:{box}px">' + picture + "</div>"
                           + f'<div class="path">{_e(r.path)}{flag}</div>'
                           + (f'<div class="small">{r.width}&times;{r.height}</div>' if r.width else "")
                           + _seen_in(r) + "</div>")
            out.append("</div>")
            if g.size > len(g.members):
                out.append(f'<p class="more">and {_count(g.size - len(g.members), "more file")} of this group: '
                           f"rows with cluster = {g.cluster} in results.jsonl / results.csv.</p>")
            out.append("</div>")
        return "\n".join(out)

    def _seen_section(self) -> str:
        return _file_table("seen", "Photos already seen in earlier scans", self.seen_list, self.seen_before,
                           "seen_before = true", "seen in (scan:file)",
                           lambda r: "<br>".join(_e(s) for s in r.seen_in or []))

    def _known_section(self) -> str:
        return _file_table("known", "Files matching imported hash lists", self.known_list, self.known,
                           "known_matches not empty", "matched (list: label, hash kind, bits apart)",
                           lambda r: "<br>".join(_e(f"{m['list']}: {m['label'] or '(no label)'}, {m['kind']}, "
                                                    f"{m['distance']} bits") for m in r.known_matches or []))

    def _errors_section(self) -> str:
        return _file_table("errors", "Files that could not be read", self.error_list, self.errors,
                           "error not empty", "reason", lambda r: _e(r.error or ""))

    def _settings_section(self, settings: dict) -> str:
        rows = _operating_point(settings, "tr")
        rows += "".join(f"<tr><th>{_e(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in settings.items())
        t = self.template
        rows += (f"<tr><th>StyleGAN eye template</th><td>left eye ({t.left_eye[0]:.4f}, {t.left_eye[1]:.4f}), "
                 f"right eye ({t.right_eye[0]:.4f}, {t.right_eye[1]:.4f}) as fractions of width and height"
                 "</td></tr>")
        return f'<h2 id="settings">Settings used</h2><table class="kv">{rows}</table>'


def _file_table(anchor: str, title: str, shown: list, total: int, column_filter: str, second: str, cell) -> str:
    """A section listing the first files of a kind (path, one more column), or nothing when there are none."""
    if not total:
        return ""
    out = [f'<h2 id="{anchor}">{title}</h2>',
           f"<p>{_left_out(len(shown), total, 'file', 'in scan order', column_filter)}</p>",
           f'<table class="list"><tr><th>file</th><th>{second}</th></tr>']
    out += [f"<tr><td>{_e(r.path)}</td><td>{cell(r)}</td></tr>" for r in shown]
    out.append("</table>")
    return "\n".join(out)


def write_report(out_dir: Path, results: Iterable[Result], *, folder: Path | None, settings: dict,
                 summary: dict, template=None, **limits) -> Path:
    """Write out_dir/report.html (atomically: temp file, then rename) from one pass over `results`.

    folder: the scanned folder, where thumbnails are read (paths in results are relative to it);
    None draws placeholders. settings: a plain dict, shown as it is. summary: keys files, scanned,
    errors, gan, groups, grouped_files, seen_before, seconds; those that can be counted from the
    results (all but scanned and seconds) are counted, so the page agrees with itself; other keys are
    shown as they are. template: an EyeTemplate, default the shipped one. limits: max_flagged,
    max_groups, max_members, max_listed, max_average, max_review (see ReportBuilder)."""
    if template is None:
        from .geometry import EyeTemplate
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


# ---- helpers ------------------------------------------------------------------------------------

def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else -1.0


def _score(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def _int(x) -> str:
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return str(x)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _value(v) -> str:
    """HTML of a settings or summary value: numbers to 3 decimals, mappings one entry a line, no blanks."""
    if v is None:
        return "not set"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return _int(v)
    if isinstance(v, dict):
        return "<br>".join(f"{_e(k)}: {_value(x)}" for k, x in v.items()) or "none"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) or "none"
    return _e(v)


def _operating_point(settings: dict, tag: str) -> str:
    """The operating point, said once: a paragraph ("p") for the page's head, a row ("tr") for the settings."""
    mode = settings.get("mode")
    if mode not in MODES:
        return ""
    threshold = (settings.get("thresholds (gan_score)") or {}).get(mode)   # as engine.settings_record names it
    text = _e(operating_point(mode)) + (f": a file is flagged when its gan_score &ge; {threshold:.3f}"
                                        if isinstance(threshold, (int, float)) else "")
    if tag == "tr":
        return f"<tr><th>Operating point</th><td>{text}</td></tr>"
    return f'<p class="meta">Verdicts use the {text}.</p>'


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 file', '2 files', '1,000 copies'."""
    return f"{_int(n)} {noun if n == 1 else plural or noun + 's'}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _left_out(shown: int, total: int, what: str, order: str, column: str) -> str:
    """How many of the `what`s (singular) are shown, and where the rest are."""
    if shown >= total:
        return f"The only {what} is shown." if total == 1 else f"All {_count(total, what)} are shown."
    return (f"Showing {_int(shown)} of {_count(total, what)} ({order}); the other {_int(total - shown)} are "
            f"listed in results.jsonl and results.csv ({_e(column)}).")


def _reasons(reasons: list[str]) -> str:
    if not reasons:
        return ""
    return '<ul class="reasons">' + "".join(f"<li>{_e(x)}</li>" for x in reasons) + "</ul>"


def _seen_in(r: Result) -> str:
    if not r.seen_in:
        return ""
    return ('<div class="small">seen before in: ' + ", ".join(_e(s) for s in r.seen_in) + "</div>")


def _figure(uri: str, side: int, alt: str, overlay_svg: str, caption_html: str, pic_class: str = "pic") -> str:
    """A square picture with an SVG overlay beside its caption (the average face, the eye heatmap)."""
    return ('<div class="figure">'
            f'<div class="{pic_class}" style="width:{side}px;height:{side}px">'
            f'<img src="{uri}" width="{side}" height="{side}" alt="{alt}">{overlay_svg}</div>'
            f"<div>{caption_html}</div></div>")


def _jpeg_uri(img: Image.Image, quality: int = 82) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _png_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colour(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 along _RAMP."""
    pos = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.minimum(pos.astype(int), len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    return np.clip(_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac + 0.5, 0, 255).astype(np.uint8)


def _heatmap_image(hist: np.ndarray) -> Image.Image:
    counts = np.log1p(hist.astype(np.float64))
    top = counts.max()
    scaled = counts / top if top > 0 else counts
    # Any non-empty bin gets at least the first colour step, so a single eye stays visible.
    scaled = np.where(hist > 0, 0.12 + 0.88 * scaled, 0.0)
    return Image.fromarray(_colour(scaled)).resize((HEATMAP_SIDE, HEATMAP_SIDE), Image.NEAREST)


def _ramp_legend() -> str:
    cells = "".join(f'<span class="swatch" style="background:rgb{tuple(int(c) for c in rgb)}"></span>'
                    for rgb in _colour(np.linspace(0, 1, 9)))
    return f"fewer eyes {cells} more eyes"


def _overlay_svg(width: float, height: float, template, eyes, grid: bool = False) -> str:
    """An SVG laid over a picture of width x height units: template eye rings (and crosshairs),
    the detected eyes as dots. Strokes keep their screen width whatever the picture's scale."""
    w, h = float(width), float(height)
    r = 0.04 * w
    shapes = []
    if grid:
        for f in (0.25, 0.5, 0.75):
            shapes.append(f'<line x1="{f * w:g}" y1="0" x2="{f * w:g}" y2="{h:g}" class="grid"/>'
                          f'<line x1="0" y1="{f * h:g}" x2="{w:g}" y2="{f * h:g}" class="grid"/>')
        shapes.append(f'<rect x="0" y="0" width="{w:g}" height="{h:g}" class="frame"/>')
    for tx, ty in (template.left_eye, template.right_eye):
        cx, cy = tx * w, ty * h
        shapes.append(f'<circle cx="{cx:.4g}" cy="{cy:.4g}" r="{r:.4g}" class="tpl"/>'
                      f'<line x1="{cx - 2 * r:.4g}" y1="{cy:.4g}" x2="{cx - r:.4g}" y2="{cy:.4g}" class="tpl"/>'
                      f'<line x1="{cx + r:.4g}" y1="{cy:.4g}" x2="{cx + 2 * r:.4g}" y2="{cy:.4g}" class="tpl"/>'
                      f'<line x1="{cx:.4g}" y1="{cy - 2 * r:.4g}" x2="{cx:.4g}" y2="{cy - r:.4g}" class="tpl"/>'
                      f'<line x1="{cx:.4g}" y1="{cy + r:.4g}" x2="{cx:.4g}" y2="{cy + 2 * r:.4g}" class="tpl"/>')
    for eye in eyes or []:
        try:
            ex, ey = float(eye[0]), float(eye[1])
        except (TypeError, ValueError, IndexError):
            continue
        shapes.append(f'<circle cx="{ex:.4g}" cy="{ey:.4g}" r="{0.012 * w:.4g}" class="eye"/>')
    return (f'<svg class="overlay" viewBox="0 0 {w:g} {h:g}" preserveAspectRatio="none" '
            f'aria-hidden="true">{"".join(shapes)}</svg>')


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{css}</style></head>
<body><main>"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1a1a1a; background: #fff; margin: 0; line-height: 1.45; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-top: 10px; border-top: 2px solid #ddd; }
h3 { font-size: 16px; margin: 0 0 8px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; word-break: break-all; }
.meta { color: #444; }
.toc { margin: 12px 0 0; font-size: 14px; }
.toc a { color: #1f5fbf; }
.note { background: #f5f7fa; border-left: 4px solid #1f5fbf; padding: 10px 14px; }
table { border-collapse: collapse; }
.kv th, .kv td, .list th, .list td { text-align: left; vertical-align: top; padding: 4px 12px 4px 0;
       border-bottom: 1px solid #eee; }
.kv th { font-weight: 600; width: 360px; }
.list td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 14px; }
.card { width: 232px; border: 1px solid #ccc; border-radius: 6px; padding: 12px; break-inside: avoid;
        page-break-inside: avoid; }
.pic { position: relative; display: inline-block; line-height: 0; }
.pic img { display: block; }
.overlay { position: absolute; left: 0; top: 0; width: 100%; height: 100%; overflow: visible; }
.overlay .tpl { fill: none; stroke: #1f8fff; stroke-width: 1.6; vector-effect: non-scaling-stroke; }
.heat .overlay .tpl { stroke: #1f5fbf; }
.overlay .eye { fill: #ff2a2a; stroke: #fff; stroke-width: 1; vector-effect: non-scaling-stroke; }
.overlay .grid { stroke: #bbb; stroke-width: 1; stroke-dasharray: 3 3; vector-effect: non-scaling-stroke; }
.overlay .frame { fill: none; stroke: #555; stroke-width: 1; vector-effect: non-scaling-stroke; }
span.tpl { color: #1f5fbf; font-weight: 600; }
span.eye { color: #d11; font-weight: 600; }
.path { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all;
        margin: 8px 0 4px; line-height: 1.3; }
.scores th { font-weight: 500; color: #555; text-align: left; padding: 1px 10px 1px 0; font-size: 13px; }
.scores td { font-variant-numeric: tabular-nums; font-size: 13px; }
.reasons { margin: 6px 0 0; padding-left: 18px; font-size: 12.5px; color: #333; }
.small { font-size: 12px; color: #555; word-break: break-all; }
.figure { display: flex; gap: 22px; align-items: flex-start; break-inside: avoid; page-break-inside: avoid; }
.figure p { margin-top: 0; max-width: 560px; }
.legend { font-size: 12px; color: #555; }
.swatch { display: inline-block; width: 16px; height: 12px; border: 1px solid #ccc; vertical-align: middle; }
.group { border: 1px solid #ccc; border-radius: 6px; padding: 12px; margin: 12px 0; break-inside: avoid;
         page-break-inside: avoid; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
.item { width: 164px; }
.item .box { display: flex; align-items: flex-end; }
.badge { display: inline-block; background: #b00020; color: #fff; font-family: system-ui, sans-serif;
         font-size: 11px; padding: 0 5px; border-radius: 3px; }
.more { font-size: 13px; color: #444; margin: 8px 0 0; }
.copies { font-size: 13px; font-weight: 600; color: #7a3e00; margin: 0 0 4px; }
.copies a { color: inherit; }
.missing { display: flex; align-items: center; justify-content: center; text-align: center;
           background: repeating-linear-gradient(45deg, #f0f0f0, #f0f0f0 8px, #e4e4e4 8px, #e4e4e4 16px);
           color: #555; font-size: 12px; line-height: 1.3; border: 1px dashed #aaa; box-sizing: border-box;
           padding: 6px; overflow-wrap: anywhere; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""
