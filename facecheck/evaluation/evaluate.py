"""`facecheck eval`: detection quality on labelled images, through the same core as `scan` and `check`.

Each labelled image is loaded with the safe loader, degraded the way platforms degrade avatars
(facecheck.evaluation.degrade: named, deterministic conditions), and scored by `pipeline.analyze.Analyzer`, the object
behind every scan. From the scores come ROC curves, true-positive rates at fixed false-positive
rates, the rates at the shipped operating points, and breakdowns by source and by condition,
written as eval.json and PNG plots. training/train_fusion.py collects its training signals with
`collect` too, so the fusion model is trained on exactly what the scanner computes.

Labels follow ../shared/data: `stylegan` is the positive class; `real_natural` and `real_ffhq` are
the negatives (FPR is reported for each: natural photos are what an investigator mostly sees, FFHQ-
aligned real photos are the hard negatives for geometry); `other_gen` (Stable Diffusion) is reported
apart, as the share flagged.

Input: a manifest CSV (columns file, label, source; paths relative to the CSV) or a folder whose
subfolders are labels, optionally with source subfolders below (images/<label>/<source>/...).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..loading import LoadError, is_candidate_file, load_image
from ..runtime import model_digests  # noqa: F401 - re-exported: eval.json names the models, as scan reports do
from . import degrade
from .dataset import LABELS, Sample, read_manifest, split_of

POSITIVE = "stylegan"
NEGATIVES = ("real_natural", "real_ffhq")
FPRS = (0.01, 0.001)
BATCH = 32
ALL = frozenset({"spectral", "backbone"})   # every pixel detector, for evaluation rows


def _quality(im, lo: int = 70, hi: int = 85) -> int:
    """A JPEG quality drawn per image in lo..hi, deterministic (from the image's pixels)."""
    return lo + int(hashlib.md5(im.tobytes()[:65536]).hexdigest()[:8], 16) % (hi - lo + 1)


def _at_least(side: int, apply: Callable) -> Callable:
    """A condition that counts only images whose longer side is at least `side` (never enlarged):
    smaller ones give None (no row)."""
    return lambda im: apply(im) if max(im.size) >= side else None


def sized_conditions() -> dict[str, Callable]:
    """The issue's goal conditions, each counting only images at least as large as its size: JPEG
    quality drawn per image in 70-85; the 90% crop at 256 px, q80 (as in weights/backbone.md). The grey_
    conditions convert to greyscale first, then degrade as their colour twin, at the same JPEG quality for
    each image (drawn from the colour original), so the two differ by the colour alone."""
    return {
        "400px_q70-85": _at_least(400, lambda im: degrade.jpeg(degrade.downscale(im, 400), _quality(im))),
        "256px_q70-85": _at_least(256, lambda im: degrade.jpeg(degrade.downscale(im, 256), _quality(im))),
        "crop90_256px_q80": _at_least(256, lambda im: degrade.jpeg(
            degrade.downscale(degrade.crop_fraction(im, 0.10), 256), 80)),
        "128px_q70-85": _at_least(128, lambda im: degrade.jpeg(degrade.downscale(im, 128), _quality(im))),
        "grey_400px_q70-85": _at_least(400, lambda im: degrade.jpeg(degrade.downscale(degrade.greyscale(im), 400),
                                                                    _quality(im))),
        "grey_256px_q70-85": _at_least(256, lambda im: degrade.jpeg(degrade.downscale(degrade.greyscale(im), 256),
                                                                    _quality(im))),
    }


def conditions(names: Iterable[str] | None = None) -> dict[str, Callable]:
    """Named degradations: "as_stored", facecheck.evaluation.degrade.standard_conditions() and sized_conditions()."""
    table = {"as_stored": lambda im: im} | degrade.standard_conditions() | sized_conditions()
    if names is None:
        return table
    names = list(names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return {n: table[n] for n in names}


def labelled_samples(source: Path) -> list[Sample]:
    """Samples from a manifest CSV, or from a folder of <label>/[<source>/]image files."""
    source = Path(source)
    if source.is_file():
        return read_manifest(source)
    if not source.is_dir():
        raise FileNotFoundError(f"no such manifest or folder: {source}")
    if (source / "manifest.csv").is_file():
        return read_manifest(source / "manifest.csv")
    samples = []
    for label_dir in sorted(p for p in source.iterdir() if p.is_dir() and p.name in LABELS):
        for path in sorted(label_dir.rglob("*")):
            if path.is_file() and is_candidate_file(path):
                rel = path.relative_to(label_dir)
                src = rel.parts[0] if len(rel.parts) > 1 else label_dir.name
                samples.append(Sample(path, label_dir.name, src, ""))
    if not samples:
        raise ValueError(f"{source} holds no images in subfolders named {', '.join(LABELS)}")
    return samples


def select(samples: list[Sample], folds: Iterable[int] | None = None,
           per_source: int | None = None, seed: int = 0) -> list[Sample]:
    """Keep dataset folds (facecheck.evaluation.dataset.split_of) and at most `per_source` images of each source."""
    if folds is not None:
        folds = set(folds)
        samples = [s for s in samples if split_of(s) in folds]
    if per_source:
        rng = np.random.default_rng(seed)
        by_source: dict[str, list[Sample]] = {}
        for s in samples:
            by_source.setdefault(s.source, []).append(s)
        samples = [s for group in by_source.values()
                   for s in (group if len(group) <= per_source
                             else [group[i] for i in sorted(rng.choice(len(group), per_source, replace=False))])]
    return samples


@dataclass
class Row:
    """One (image, condition) pair and what the core said about it."""
    file: str
    label: str
    source: str
    condition: str
    error: str | None = None
    faces_found: int = 0
    geometry: dict | None = None
    eye_score: float | None = None
    spectral_score: float | None = None
    backbone_score: float | None = None
    gan_score: float | None = None
    features: list[float] = field(default_factory=list)
    colourless: bool | None = None   # None in rows written before facecheck measured it
    depth: str | None = None         # how far the cascade went: "cheap", "eyes" or "full" (facecheck.cascade)


def collect(samples: list[Sample], named: dict[str, Callable], analyzer, *, fuse: bool = True,
            reuse_geometry: dict[tuple[str, str], Row] | None = None,
            progress: Callable[[int, int], None] | None = None) -> list[Row]:
    """Score every sample under every condition through `analyzer.signals` (pipeline.analyze.Analyzer).

    `reuse_geometry` maps (file, condition) to a Row of an earlier run with the same face locator and
    eye template: those copies skip the locator (the costly part) and only the spectral detector and
    the fusion run again. Degradations are deterministic, so the copies are the same images."""
    from ..verdict import fusion_features
    template = analyzer.models()[1]
    rows: list[Row] = []
    pending: list[tuple[Row, np.ndarray]] = []
    reused: list[tuple[Row, np.ndarray]] = []

    def finish(row: Row, sig) -> None:
        row.faces_found, row.geometry, row.eye_score = sig.faces_found, sig.geometry, sig.eye_score
        row.spectral_score, row.backbone_score, row.gan_score = sig.spectral_score, sig.backbone_score, sig.gan_score
        row.colourless, row.depth = sig.colourless, sig.depth
        row.features = fusion_features(sig.spectral_score, sig.backbone_score, sig.geometry, template,
                                       sig.colourless).tolist()

    def flush():
        if pending:
            for (row, _), sig in zip(pending, analyzer.signals([im for _, im in pending], fuse=fuse, detectors=ALL)):
                finish(row, sig)
            pending.clear()
        if reused:
            for (row, _), sig in zip(reused, analyzer.signals([im for _, im in reused], fuse=fuse, detectors=ALL,
                                                              geometry_of=[r for r, _ in reused])):
                finish(row, sig)
            reused.clear()

    for done, sample in enumerate(samples):
        try:
            original = load_image(sample.path).image
        except LoadError as e:
            original, error = None, str(e)
        for name, apply in named.items():
            row = Row(str(sample.path), sample.label, sample.source, name)
            rows.append(row)
            if original is None:
                row.error = error
                continue
            degraded = apply(original)
            if degraded is None:
                rows.pop()
                continue
            image = np.asarray(degraded.convert("RGB"))
            if min(image.shape[:2]) < 32:
                row.error = "smaller than 32 px after degradation"
                continue
            earlier = (reuse_geometry or {}).get((row.file, name))
            if earlier is not None and earlier.error is None:
                row.faces_found, row.geometry, row.eye_score = earlier.faces_found, earlier.geometry, earlier.eye_score
                reused.append((row, image))
            else:
                pending.append((row, image))
            if len(pending) >= BATCH or len(reused) >= BATCH:
                flush()
        if progress:
            progress(done + 1, len(samples))
    flush()
    return rows


# ---------------------------------------------------------------- metrics

def auc(neg: np.ndarray, pos: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    if len(neg) == 0 or len(pos) == 0:
        return None
    scores = np.concatenate([neg, pos])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(neg) * len(pos)))


def roc_curve(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, flagging score >= threshold."""
    thresholds = np.unique(np.concatenate([neg, pos]))[::-1]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    fpr = 1 - np.searchsorted(neg_sorted, thresholds, side="left") / max(len(neg), 1)
    tpr = 1 - np.searchsorted(pos_sorted, thresholds, side="left") / max(len(pos), 1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def threshold_at_fpr(neg: np.ndarray, fpr: float) -> float:
    """The lowest threshold t with share(neg >= t) <= fpr (flagging is score >= t)."""
    neg = np.sort(np.asarray(neg, np.float64))
    allowed = int(math.floor(fpr * len(neg)))     # negatives allowed above the threshold
    if allowed >= len(neg):
        return float(neg[0])
    return float(np.nextafter(neg[len(neg) - 1 - allowed], np.inf))


def tpr_at_fpr(neg: np.ndarray, pos: np.ndarray, fpr: float) -> float | None:
    """ROC read-out: TPR when the threshold is set on these very negatives (a curve property)."""
    if len(neg) == 0 or len(pos) == 0:
        return None
    return float(np.mean(pos >= threshold_at_fpr(neg, fpr)))


def share_flagged(scores: np.ndarray, threshold: float) -> float | None:
    """Share of `scores` flagged at an operating point (score >= threshold); None when empty."""
    scores = np.asarray(scores)
    return float(np.mean(scores >= threshold)) if len(scores) else None


def binomial_interval(k: int, n: int, level: float = 0.95) -> list[float]:
    """Exact (Clopper-Pearson) confidence interval of a share of k in n independent trials.

    The held-out sets are small (about a hundred FFHQ-aligned photos per condition), so a measured
    FPR of 1.8% is compatible with anything from 0.2% to 6%; the interval says what the data can
    and cannot show. With no false positive among n negatives the upper end is 1 - 0.025^(1/n),
    about 3.7/n, so showing an FPR of at most 0.1% takes several thousand negatives."""
    from scipy.stats import beta
    tail = (1 - level) / 2
    low = float(beta.ppf(tail, k, n - k + 1)) if k > 0 else 0.0
    high = float(beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
    return [low, high]


def share_interval(scores: np.ndarray, threshold: float, level: float = 0.95) -> list[float] | None:
    """`binomial_interval` of `share_flagged`, for independent images; None when empty."""
    scores = np.asarray(scores)
    if not len(scores):
        return None
    return binomial_interval(int(np.sum(scores >= threshold)), len(scores), level)


def percent(share: float | None, interval: list[float] | None = None) -> str:
    """'1.8%', or '1.8% (0.2-6.4)' with a confidence interval; 'n/a' when there was nothing to count."""
    if share is None:
        return "n/a"
    text = f"{100 * share:.1f}%"
    return text + f" ({100 * interval[0]:.1f}-{100 * interval[1]:.1f})" if interval else text


def percent_of(rates: dict, key: str) -> str:
    """`percent` of one rate of a `summarize` block, with its interval where the block has one."""
    return percent(rates[key], rates.get(f"{key}_interval"))


def summarize(rows: list[Row], thresholds: dict[str, float], score: str = "gan_score") -> dict:
    """Every number of the report: per condition, per source, at the operating points."""
    def scores(keep) -> np.ndarray:
        return np.array([getattr(r, score) for r in rows if r.error is None and keep(r)], np.float64)

    def block(keep, intervals: bool) -> dict:
        """Rates over the rows `keep` selects; with `intervals`, 95% intervals beside the operating-point
        rates (only where each image enters once: copies of one image are not independent)."""
        pos = scores(lambda r: r.label == POSITIVE and keep(r))
        out = {"n": {label: int(len(scores(lambda r, l=label: r.label == l and keep(r)))) for label in LABELS}}
        for neg_label in NEGATIVES:
            neg = scores(lambda r: r.label == neg_label and keep(r))
            out[f"auc_vs_{neg_label}"] = auc(neg, pos)
            for fpr in FPRS:
                out[f"roc_tpr_at_{fpr:g}_fpr_{neg_label}"] = tpr_at_fpr(neg, pos, fpr)
        for mode, t in thresholds.items():
            out[mode] = {"threshold": t, "tpr": share_flagged(pos, t)}
            if intervals:
                out[mode]["tpr_interval"] = share_interval(pos, t)
            for label in NEGATIVES + ("other_gen",):
                flagged = scores(lambda r, l=label: r.label == l and keep(r))
                out[mode][f"flagged_{label}"] = share_flagged(flagged, t)
                if intervals:
                    out[mode][f"flagged_{label}_interval"] = share_interval(flagged, t)
        return out

    names = list(dict.fromkeys(r.condition for r in rows))
    sources = sorted({(r.label, r.source) for r in rows})
    return {
        "score": score,
        "thresholds": thresholds,
        "errors": sum(r.error is not None for r in rows),
        "face_found_rate": {label: _rate([r.faces_found > 0 for r in rows if r.label == label and r.error is None])
                            for label in LABELS},
        "all_conditions": block(lambda r: True, intervals=False),
        "by_condition": {c: block(lambda r, c=c: r.condition == c, intervals=True) for c in names},
        "by_source": {f"{label}/{src}": {
            "n": int(sum(r.label == label and r.source == src and r.error is None for r in rows)),
            **{mode: share_flagged(scores(lambda r, s=src, l=label: r.source == s and r.label == l), t)
               for mode, t in thresholds.items()},
            "by_condition": {c: {mode: share_flagged(scores(lambda r, s=src, l=label, c=c: r.source == s and r.label == l
                                                     and r.condition == c), t)
                                 for mode, t in thresholds.items()} for c in names},
        } for label, src in sources},
    }


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def write_plots(rows: list[Row], summary: dict, out_dir: Path, score: str = "gan_score") -> list[Path]:
    """roc.png (StyleGAN vs each negative class, per condition, log FPR axis) and
    tpr_by_condition.png (TPR at each operating point). Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, neg_label in zip(axes, NEGATIVES):
        for c in summary["by_condition"]:
            pos = np.array([getattr(r, score) for r in rows if r.error is None and r.condition == c
                            and r.label == POSITIVE])
            neg = np.array([getattr(r, score) for r in rows if r.error is None and r.condition == c
                            and r.label == neg_label])
            if len(pos) and len(neg):
                fpr, tpr = roc_curve(neg, pos)
                ax.plot(np.maximum(fpr, 1e-4), tpr, label=c, lw=1.2)
        for fpr in FPRS:
            ax.axvline(fpr, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_xlabel(f"false-positive rate on {neg_label}")
        ax.set_title(f"StyleGAN vs {neg_label}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("true-positive rate (StyleGAN)")
    if axes[1].get_legend_handles_labels()[0]:     # no curve without both classes
        axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out_dir / "roc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    names = list(summary["by_condition"])
    modes = list(summary["thresholds"])
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.9), 4.5))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        values = [(summary["by_condition"][c][mode]["tpr"] or 0) * 100 for c in names]
        ax.bar(np.arange(len(names)) + i * width, values, width, label=f"{mode} mode")
    ax.set_xticks(np.arange(len(names)) + width * (len(modes) - 1) / 2)
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("StyleGAN flagged (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out_dir / "tpr_by_condition.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def write_rows(rows: list[Row], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r.__dict__, separators=(",", ":")) + "\n")


def read_rows(path: Path) -> list[Row]:
    with open(path, encoding="utf-8") as f:
        return [Row(**json.loads(line)) for line in f]
