"""The streaming pass behind report.html: results in, bounded state out.

One pass over the results (an iterator of `Result`, as long as the scan) keeps only bounded things,
so a million-file scan builds its report in flat memory:
- the `max_flagged` flagged photos (verdict "gan") with the highest gan_score, one card per reuse
  group (its best file, "+N copies"), so copies of one face cannot fill the gallery (`Cards`);
- the same, up to `max_review`, for faces to look at: not flagged, but with their eyes where StyleGAN
  puts them (the rows whose reasons carry verdict.on_template_caveat);
- the `max_groups` largest reuse groups, each with its first `max_members` files;
- the first `max_listed` files already seen in earlier scans, matching an imported hash list, or
  that failed;
- a fixed `HIST_BINS` x `HIST_BINS` histogram of eye positions (x / width, y / height) over every
  face, whatever its verdict: StyleGAN faces pile up on the template;
- a running sum of the flagged images resized to `AVERAGE_SIDE` square (the first `max_average`):
  StyleGAN faces are aligned, so their mean is sharp around the eyes;
- counters.
`ReportBuilder.html` turns that state into the page: report.view makes the view model (reading the
thumbnails it shows), report.render fills the template.
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..result import Result
from ..verdict import has_on_template_caveat
from .pictures import open_image
from .render import render
from .view import page_view
from .words import count, number

AVERAGE_SIDE = 256         # the average face is computed at this size
HIST_BINS = 100            # eye-position histogram: bins per axis over the frame
ON_TEMPLATE = 0.02         # "on the template": mean eye distance under 2% of the image width


@dataclass
class Group:
    cluster: int
    size: int
    members: list[Result] = field(default_factory=list)


class Cards:
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
        entry = (number(r.gan_score), number(r.eye_score), -next(self._seq), r)   # -seq is unique: r is never compared
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
            return (f"Showing the {count(cards, 'photo')} with the highest gan_score among the "
                    f"{count(self.files, what)}, one card per reuse group; the rest are listed in results.jsonl "
                    f"and results.csv ({column}).")
        if cards == self.files:
            return (f"The only {what} is shown." if cards == 1 else
                    f"All {count(cards, what)} are shown, the highest gan_score first.")
        return (f"All {count(self.files, what)} are shown, as {count(cards, 'card')}: copies of one photo "
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
        self.flagged_cards = Cards(max_flagged)
        self.review_cards = Cards(max_review)   # not flagged, eyes on the template: to look at
        self._groups: dict[int, Group] = {}            # kept groups
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
        self.on_template = 0     # faces whose eyes are within `on_template_within` of the template
        self.on_template_within = ON_TEMPLATE
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

    def groups_shown(self) -> list[Group]:
        """The kept reuse groups, the largest first."""
        return sorted(self._groups.values(), key=lambda g: (-g.size, g.cluster))

    def shows_group(self, cluster: int) -> bool:
        return cluster in self._groups

    def average_image(self) -> Image.Image | None:
        """The pixel-by-pixel mean of the flagged images averaged, or None when there were none."""
        if not self.avg_count:
            return None
        return Image.fromarray(np.clip(self.avg_sum / self.avg_count + 0.5, 0, 255).astype(np.uint8))

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
            group = self._groups[r.cluster] = Group(r.cluster, size)
        if len(group.members) < self.max_members:
            group.members.append(r)

    def _add_flagged(self, r: Result) -> None:
        self.flagged_cards.add(r)
        if self.folder is not None and self.avg_tried < self.max_average:
            self.avg_tried += 1
            img = open_image(self.folder, r.path, min_side=AVERAGE_SIDE)
            if isinstance(img, Image.Image):
                small = img.resize((AVERAGE_SIDE, AVERAGE_SIDE), Image.BILINEAR, reducing_gap=2.0)
                self.avg_sum += np.asarray(small, np.float64)
                self.avg_count += 1
            else:
                self.avg_failed += 1

    # ---- the page -----------------------------------------------------------------------------------

    def html(self, settings: dict, summary: dict) -> str:
        """The page: the view model of what was kept (report.view), filled into the template."""
        return render(page_view(self, dict(settings or {}), dict(summary or {})))
