"""The pieces every model card (weights/*.md) is written with: markdown table rows, and the one way numbers read there.

training/spectral_card.py, training/backbone_card.py, training/train_fusion.py and training/quantize_spectral.py write
their cards with these, so a rate reads the same in every card: "57.1% (64/112; 47.4-66.5)" is the share flagged,
the counts and the exact (Clopper-Pearson) 95% interval; "n/a" where there was nothing to count. Torch-free; never
imported by facecheck.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from facecheck.evaluation.evaluate import binomial_interval, percent, percent_of  # noqa: F401  (cards use all three)


def four(value: float | None) -> str:
    """An AUC or a score to 4 decimals; 'n/a' when there was none."""
    return "n/a" if value is None else f"{value:.4f}"


def counted(k: int, n: int, share: float | None = None, interval: list[float] | None = None) -> str:
    """'57.1% (64/112; 47.4-66.5)': k of n, with the exact 95% interval; 'n/a' when n is 0. `share` and `interval`
    as a results file stored them (the text is then read from those), else computed from k and n."""
    if n == 0:
        return "n/a"
    low, high = interval if interval is not None else binomial_interval(k, n)
    value = 100 * share if share is not None else 100 * k / n
    return f"{value:.1f}% ({k}/{n}; {100 * low:.1f}-{100 * high:.1f})"


def rate_of(scores, threshold: float) -> dict:
    """{"k", "n", "share", "interval"}: how many scores reach the threshold, as results files store a rate."""
    scores = np.asarray(scores)
    k, n = int((scores >= threshold).sum()), len(scores)
    return {"k": k, "n": n, "share": k / n if n else None, "interval": binomial_interval(k, n) if n else None}


def counted_rate(rate: dict | None) -> str:
    """`counted` of a stored rate (rate_of's dict); 'n/a' when missing or empty."""
    if not rate or rate.get("n", 0) == 0:
        return "n/a"
    return counted(rate["k"], rate["n"], rate["share"], rate["interval"])


def flagged(scores, threshold: float) -> str:
    """`counted` of the scores at or above the threshold; 'n/a' when there are none."""
    scores = np.asarray(scores)
    return counted(int(np.sum(scores >= threshold)), len(scores)) if len(scores) else "n/a"


def row(cells: Iterable) -> str:
    """One markdown table row: '| a | b |'."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(header: Iterable, rows: Iterable[Iterable] = ()) -> list[str]:
    """A markdown table's lines: the header, its rule, then the rows."""
    header = list(header)
    return [row(header), "|" + "---|" * len(header), *(row(r) for r in rows)]
