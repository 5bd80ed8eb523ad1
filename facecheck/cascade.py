"""The cascade: the costly models run only on the files whose verdict they could still change.

Stages, in the order the Analyzer runs them:
1. cheap, on every file: decoding, hashes, YuNet (the face box and five keypoints) and the backbone;
2. eyes: FaceMesh places the eyes the template check needs (about 7 ms of CPU per face);
3. full: the spectral detector (about 10 ms).

The fusion is linear in the logit (facecheck.verdict), and every feature a later stage sets has a known
range: the spectral logit is clipped to +-SPECTRAL_CLIP, log(1 + template_z2) to [0, GEOMETRY_CAP], each
squared deviation to [0, SQUARED_CAP / 100], cut_by_border is 0 or 1, and the face box is YuNet's, known
at stage 1. So before a stage runs, the highest logit it could lead to is a sum of known terms and the
largest value each unknown term can take (FaceMesh may also reject the face, which zeroes every geometry
term: that case is covered too). A file whose highest reachable score stays below the lowest threshold
of every mode (sensitive) is `real` (or `no_face`) at every mode whatever the later models would say:
they are skipped. Nothing is estimated from data, so no flag can be lost, at any mode.

One exception to "only where it can change the verdict": an unflagged face with its eyes on the template
is one to look at (facecheck.verdict.on_template_caveat), and only FaceMesh's eyes say so reliably, so
FaceMesh also runs wherever YuNet's eye keypoints put the face near the template (NEAR_TEMPLATE_COARSE_Z2).

A row says how far it went (`depth`): "cheap" (eyes from YuNet's keypoints, no spectral score; its
gan_score is the fusion on those), "eyes" (FaceMesh ran, no spectral score; gan_score without the
spectral term) or "full". `--depth full` (Settings.depth) runs every model on every file.
"""
from __future__ import annotations

import math

from .verdict import FEATURE_NAMES, GEOMETRY_CAP, GEOMETRY_KNOTS, SQUARED_CAP, fusion_features, logit

DEPTHS = ("cascade", "full")   # Settings.depth: skip where it cannot matter | every model on every file
# Kept between the bound and the lowest threshold: covers the rounding of the stored gan_score (4 decimals,
# at most ~5e-4 in the logit near the thresholds) and float32 arithmetic in the fusion.
MARGIN_LOGIT = 0.01
SQUARED_DEVIATIONS = ("eye_mid_dx_sq", "eye_mid_dy_sq", "scale_sq", "roll_sq")
# template_z2 of YuNet's eye keypoints at or below which FaceMesh runs, so that the faces it would put on the
# template (z2 <= ON_TEMPLATE_Z2) keep its eyes: the largest coarse z2 of the 3,942 such faces of fold 1
# under six degradations (training/coarse_eyes_cut.py; their 99th percentile is 126). YuNet's keypoints
# are the pupils at 320 px, biased against FFHQ's eye centres, hence the distance from 12. About 10% of
# natural photos fall under it.
NEAR_TEMPLATE_COARSE_Z2 = 258.0


def _reaches_a_threshold(fusion, logit_bound: float) -> bool:
    return logit_bound + MARGIN_LOGIT >= logit(min(fusion.thresholds.values()), clip=math.inf)


def spectral_can_matter(fusion, score_without_spectral: float, colourless: bool) -> bool:
    """Whether the spectral detector could lift this file's gan_score (computed with every other signal,
    spectral term 0) to the lowest threshold of any mode. `fusion` is a facecheck.verdict.FusionModel; one
    that did not record its reach always answers yes."""
    reach = fusion.spectral_reach(colourless)
    return reach is None or _reaches_a_threshold(fusion, logit(score_without_spectral, clip=math.inf) + reach)


def _best_face_term(w: dict[str, float], box_w: float, box_h: float) -> float:
    """The largest sum the geometry features can add once FaceMesh has placed the eyes, for a face whose
    YuNet box is box_w x box_h (fractions of the frame)."""
    def piecewise(g):   # the log(1 + z2) term with its hinges
        return w["geometry_log1p_z2"] * g + sum(w[f"geometry_hinge_{k:g}"] * max(g - k, 0.0) for k in GEOMETRY_KNOTS)
    # a piecewise-linear function is largest at an end or a knot
    best_geometry = max(piecewise(g) for g in (0.0, GEOMETRY_CAP, *GEOMETRY_KNOTS))
    return (w["has_face"] + best_geometry + sum(max(w[n], 0.0) * SQUARED_CAP / 100 for n in SQUARED_DEVIATIONS)
            + max(w["cut_by_border"], 0.0) + w["box_w"] * box_w + w["box_h"] * box_h)


def near_template(coarse_z2: float) -> bool:
    """Whether YuNet's eyes put the face close enough to the template that FaceMesh might put it on it."""
    return coarse_z2 <= NEAR_TEMPLATE_COARSE_Z2


def face_models_can_matter(fusion, backbone_score: float | None, colourless: bool, box_w: float, box_h: float) -> bool:
    """Whether FaceMesh and the spectral detector together could lift the gan_score of a file in which
    YuNet found a face (box box_w x box_h, fractions of the frame) to the lowest threshold of any mode.
    Yes whenever the fusion did not record its weights."""
    w, reach = fusion.coefficients, fusion.spectral_reach(colourless)
    if w is None or fusion.intercept is None or reach is None:
        return True
    known = fusion_features(None, backbone_score if "backbone" in fusion.uses else None, None, None, colourless)
    bound = fusion.intercept + sum(w[name] * float(x) for name, x in zip(FEATURE_NAMES, known))
    # FaceMesh may reject the face (every geometry term 0) or place its eyes: whichever is higher
    return _reaches_a_threshold(fusion, bound + max(0.0, _best_face_term(w, box_w, box_h)) + reach)
