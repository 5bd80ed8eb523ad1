"""Detection rates at fixed false-positive rates, shared by training (model card) and the benchmark."""
from __future__ import annotations

import numpy as np


def threshold_at_fpr(negative_scores: np.ndarray, fpr: float) -> float:
    """The smallest threshold with at most `fpr` of the negatives scoring strictly above it."""
    neg = np.sort(np.asarray(negative_scores, dtype=np.float64))
    allowed = int(np.floor(fpr * len(neg)))
    return float(neg[len(neg) - allowed - 1]) if allowed < len(neg) else float(neg[0])


def rate_above(scores: np.ndarray, threshold: float) -> float:
    scores = np.asarray(scores)
    return float((scores > threshold).mean()) if len(scores) else float("nan")


def tpr_at_fpr(positive_scores: np.ndarray, negative_scores: np.ndarray, fpr: float) -> float:
    """ROC-style TPR at an FPR, the threshold read off these same negatives (a property of the ROC curve,
    not an operating point: for that, use a threshold fixed on other data and `rate_above`)."""
    return rate_above(positive_scores, threshold_at_fpr(negative_scores, fpr))


def auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    pos, neg = np.asarray(positive_scores, np.float64), np.asarray(negative_scores, np.float64)
    allv = np.concatenate([pos, neg])
    ranks = np.empty(len(allv))
    order = allv.argsort(kind="mergesort")
    ranks[order] = np.arange(1, len(allv) + 1)
    # average ranks over ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
