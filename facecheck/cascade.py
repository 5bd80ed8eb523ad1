"""The cascade: the spectral detector, the costliest model of the scan path, runs only on the files whose
verdict it could still change.

The fusion is linear in the logit (facecheck.verdict): logit(gan_score) = logit(score without the
spectral term) + w * spectral_logit, with spectral_logit clipped to +-SPECTRAL_CLIP. So once every
other signal is known, the spectral detector can move the logit by at most its reach, SPECTRAL_CLIP x |w|
(recorded in the fusion's metadata, with its own value for colourless images). A file whose score
without it stays below the lowest threshold of every mode (sensitive) even when the reach is added can
never be flagged, whatever the detector would say: it is `real` (or `no_face`) at every mode, and the
detector is skipped. Nothing is approximated, so the gate loses no flag at any mode by construction
(the loss table in README.md checks it on the test fold).

A skipped file's row has spectral_score None, gan_score without the spectral term, and depth
"cheap"; `--depth full` (Settings.depth) runs the spectral detector on every file.
"""
from __future__ import annotations

DEPTHS = ("cascade", "full")   # Settings.depth: skip where it cannot matter | every model on every file
# Kept between the bound and the lowest threshold: covers the rounding of the stored gan_score (4 decimals,
# at most ~5e-4 in the logit near the thresholds) and float32 arithmetic in the fusion.
MARGIN_LOGIT = 0.01


def logit(p: float) -> float:
    import math
    p = min(max(float(p), 1e-30), 1 - 1e-7)
    return math.log(p / (1 - p))


def spectral_can_matter(fusion, score_without_spectral: float, colourless: bool) -> bool:
    """Whether the spectral detector could lift this file's gan_score to the lowest threshold of any mode.
    `fusion` is a facecheck.verdict.FusionModel; a fusion that did not record its reach always answers yes."""
    reach = fusion.spectral_reach(colourless)
    if reach is None:
        return True
    lowest = min(fusion.thresholds.values())
    return logit(score_without_spectral) + reach + MARGIN_LOGIT >= logit(lowest)
