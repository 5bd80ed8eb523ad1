"""One answer per image: fuse the eye-geometry, backbone and spectral signals into `gan_score` and a verdict.

The fusion model (weights/fusion.onnx, built by training/train_fusion.py, card in weights/fusion.md)
is a logistic regression over a handful of features, an additive model in the log-odds:

    logit(gan_score) = w_s * spectral_logit + w_b * backbone_logit + f(geometry) + b

where f is piecewise linear in log(1 + template_z2) (hinges at fixed knots), so each signal adds its
own evidence and the weights can be read off the card. The backbone (facecheck.backbone, a fine-tuned
EfficientNet-Lite0 on the whole image at 128 px) and the spectral detector (native-resolution pixel
noise) look at the pixels; the geometry looks at where the eyes are.

Which detectors a shipped fusion uses is in its metadata (`uses`): a feature it does not use has
weight 0 and its detector is not run in the verdict path (FusionModel.uses).

No face: the geometry terms are zero and a `has_face` term is off, so gan_score is the pixel
evidence alone (the model is trained on "blinded" copies, with the face hidden from it, to learn that
mapping). A crop or photo with no detectable face is therefore still flagged `gan` when its pixels
alone clear the threshold; otherwise its verdict is `no_face`.

Operating points: thresholds on gan_score stored in the model's metadata, chosen on held-out real
photos (see the card): `default` flags <= 0.1% of natural photos and <= 1% of real photos in FFHQ
alignment (the hard negatives); `strict` <= 0.01% (extrapolated: no held-out set here is large enough
to measure it) and <= 0.1%; `sensitive`, for triage where a person reviews every flag, <= 1% and <= 5%.
Each threshold is the larger of its two constraints.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

MODEL_FILE = "fusion.onnx"
MODES = ("strict", "default", "sensitive")
TARGET_FPR_NATURAL = {"strict": 1e-4, "default": 1e-3, "sensitive": 1e-2}
TARGET_FPR_FFHQ = {"strict": 1e-3, "default": 1e-2, "sensitive": 5e-2}
VERDICTS = ("gan", "real", "no_face", "error")

# Knots of the piecewise-linear geometry term, in log(1 + template_z2). A StyleGAN face in FFHQ
# alignment has z2 of about 3 (log1p ~ 1.4); a 90% crop moves it to ~20-200 (3-5.3); natural photos
# sit beyond ~100 (4.6+). Capped at 9 (z2 ~ 8000: eyes far off the template; further says nothing more).
GEOMETRY_KNOTS = (1.0, 2.0, 3.0, 4.0, 5.5)
GEOMETRY_CAP = 9.0
SPECTRAL_CLIP = 9.0    # |logit| of the spectral score, so one saturated signal cannot drown the other
BACKBONE_CLIP = 9.0    # the same for the backbone's score
PIXEL_FEATURES = {"spectral_logit": "spectral", "backbone_logit": "backbone"}   # feature -> detector

SQUARED_CAP = 400.0   # (deviation / spread)^2 is capped at 20 spreads, then divided by 100
ON_TEMPLATE_Z2 = 12.0   # template_z2 up to which a face counts as "on the template" in the reasons
ON_TEMPLATE_CAVEAT = "eyes where StyleGAN puts them"   # how on_template_caveat begins
FEATURE_NAMES = (["spectral_logit", "backbone_logit", "has_face", "geometry_log1p_z2"]
                 + [f"geometry_hinge_{k:g}" for k in GEOMETRY_KNOTS]
                 + ["cut_by_border", "eye_mid_dx_sq", "eye_mid_dy_sq", "scale_sq", "roll_sq", "box_w", "box_h"]
                 + ["colourless", "colourless_spectral_logit", "colourless_backbone_logit"])
COLOURLESS = FEATURE_NAMES.index("colourless")


def logit(p: float, clip: float = SPECTRAL_CLIP) -> float:
    p = min(max(float(p), 1e-12), 1 - 1e-12)
    return float(np.clip(math.log(p / (1 - p)), -clip, clip))


def fusion_features(spectral_score: float | None, backbone_score: float | None, geometry: dict | None,
                    template, colourless: bool = False) -> np.ndarray:
    """float32 [len(FEATURE_NAMES)]: the fusion model's input for one image. A detector's score is
    None when the shipped fusion does not use it (its feature is then 0, and so is its weight).
    `geometry` is facecheck.geometry.geometry_features() of the scored face, or None when no face was
    found; `template` the EyeTemplate, whose spreads are the units of the squared deviations. Those let
    the fit weigh horizontal, vertical, scale and roll deviations apart (StyleGAN's truncation keeps its
    faces tighter on the template than real FFHQ-aligned photos). `colourless`
    (facecheck.colour.is_colourless) repeats the pixel logits in columns of their own, so a black-and-white
    image gets its own weights for them: the detectors score grey StyleGAN faces far lower than colour ones."""
    x = np.zeros(len(FEATURE_NAMES), np.float32)
    x[0] = 0.0 if spectral_score is None else logit(spectral_score, SPECTRAL_CLIP)
    x[1] = 0.0 if backbone_score is None else logit(backbone_score, BACKBONE_CLIP)
    if colourless:
        x[COLOURLESS:COLOURLESS + 3] = (1.0, x[0], x[1])
    if geometry is not None:
        g = min(math.log1p(geometry["template_z2"]), GEOMETRY_CAP)
        x[2] = 1.0
        x[3] = g
        i = 4
        for knot in GEOMETRY_KNOTS:
            x[i] = max(g - knot, 0.0)
            i += 1
        squared = lambda v, spread: min((v / spread) ** 2, SQUARED_CAP) / 100.0  # noqa: E731
        x[i:COLOURLESS] = [geometry["cut_by_border"],
                           squared(geometry["eye_mid_dx"], template.distance_spread),
                           squared(geometry["eye_mid_dy"], template.distance_spread),
                           squared(geometry["scale_error"], template.scale_spread),
                           squared(geometry["roll_deg"] - template.roll_deg, template.roll_spread_deg),
                           geometry["box_w"], geometry["box_h"]]
    return x


@dataclass
class Decision:
    verdict: str
    gan_score: float
    threshold: float
    mode: str


class FusionModel:
    """gan_score from the fusion features, and the verdict at an operating point."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.input_name = runtime.input_names(MODEL_FILE)[0]
        meta = runtime.session(MODEL_FILE).get_modelmeta().custom_metadata_map
        self.thresholds = {mode: float(meta[f"threshold_{mode}"]) for mode in MODES}
        self.spectral_flag = float(meta.get("spectral_flag", "0.9"))
        self.backbone_flag = float(meta.get("backbone_flag", "0.9"))
        features = meta.get("features", "").split(",")
        if features != FEATURE_NAMES:
            raise RuntimeError(f"{MODEL_FILE} was built for the features {features}, this facecheck computes "
                               f"{FEATURE_NAMES}: rebuild it with training/train_fusion.py")
        # the pixel detectors whose feature carries a weight (the others are not run for the verdict)
        self.uses = frozenset(meta.get("uses", ",".join(PIXEL_FEATURES.values())).split(","))
        # how far the spectral term can move the logit (SPECTRAL_CLIP x |its weight|), for colour and for
        # colourless images (facecheck.cascade); absent from a fusion built before the cascade
        self._spectral_reach = ({False: float(meta["spectral_reach"]), True: float(meta["spectral_reach_colourless"])}
                                if "spectral_reach" in meta else None)
        # the logistic regression's weights by feature name, and its intercept, for the cascade's bound on
        # what the face models could add (facecheck.cascade); absent from a fusion built before it
        self.coefficients = ({name: float(w) for name, w in json.loads(meta["coefficients"]).items()}
                             if "coefficients" in meta else None)
        self.intercept = float(meta["intercept"]) if "intercept" in meta else None

    def spectral_reach(self, colourless: bool) -> float | None:
        """The most the spectral detector can add to (or take from) this fusion's logit; None when unknown."""
        return None if self._spectral_reach is None else self._spectral_reach[bool(colourless)]

    def score(self, features: np.ndarray) -> np.ndarray:
        """float32 [N] in [0, 1] from float32 [N, len(FEATURE_NAMES)]."""
        if len(features) == 0:
            return np.zeros(0, np.float32)
        (scores,) = self.runtime.run(MODEL_FILE, {self.input_name: np.asarray(features, np.float32)})
        return np.asarray(scores, np.float32).reshape(-1)

    def decide(self, gan_score: float, has_face: bool, mode: str = "default") -> Decision:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        threshold = self.thresholds[mode]
        if gan_score >= threshold:
            verdict = "gan"
        else:
            verdict = "real" if has_face else "no_face"
        return Decision(verdict, gan_score, threshold, mode)


def operating_point(mode: str) -> str:
    """What a mode promises, said once per page or account (not on every row's reason)."""
    return (f"{mode} mode (flags <= {TARGET_FPR_NATURAL[mode] * 100:g}% of real natural photos, "
            f"<= {TARGET_FPR_FFHQ[mode] * 100:g}% of real FFHQ-aligned ones)")


def decision_reason(decision: Decision, has_face: bool) -> str:
    """The first reason a reader sees: what the verdict rests on (operating_point says what the mode means)."""
    if decision.verdict == "gan":
        basis = "" if has_face else "; no face found, flagged on the pixel detectors alone"
        return f"GAN face: gan_score {decision.gan_score:.3f} >= {decision.threshold:.3f} ({decision.mode} mode){basis}"
    return f"not flagged: gan_score {decision.gan_score:.3f} < {decision.threshold:.3f} ({decision.mode} mode)"


_CAVEAT_BODY = (": a StyleGAN face or a real photo aligned the FFHQ way (face datasets do this); the pixel "
                "detectors did not decide which at this threshold, so look at it")


def on_template_caveat(decision: Decision, geometry: dict | None, thresholds: dict[str, float]) -> str | None:
    """For a face on the template that was not flagged: say what that geometry means and which
    mode would flag it, so that 'real' is not read as 'shown to be real'."""
    if decision.verdict == "gan" or geometry is None or geometry["template_z2"] > ON_TEMPLATE_Z2:
        return None
    would = [m for m in MODES if m != decision.mode and decision.gan_score >= thresholds[m]]
    return (ON_TEMPLATE_CAVEAT + _CAVEAT_BODY + (f" ({' and '.join(would)} mode would flag it)" if would else ""))


def has_on_template_caveat(reasons: list[str] | None) -> bool:
    """Whether a row's reasons carry on_template_caveat (how the report finds the faces to look at)."""
    return any(reason.startswith(ON_TEMPLATE_CAVEAT) for reason in reasons or [])


def brief_caveat(reason: str) -> str | None:
    """For a page that explains on_template_caveat once: the caveat shrinks to which mode would flag
    the face ("sensitive mode would flag it"), or to None; other reasons stay as they are."""
    if not reason.startswith(ON_TEMPLATE_CAVEAT + _CAVEAT_BODY):
        return reason
    return reason[len(ON_TEMPLATE_CAVEAT + _CAVEAT_BODY):].strip(" ()") or None


def _detector_reason(score: float, flag_at: float, gan_like: str, real_like: str, inconclusive: str, name: str) -> str:
    """One detector's evidence in words: GAN-like at or above its flag threshold, real-like at or
    below the mirror of it, else inconclusive."""
    text = gan_like if score >= flag_at else real_like if score <= 1 - flag_at else inconclusive
    return f"{text} ({name} score {score:.3f})"


def backbone_reason(backbone_score: float, flag_at: float) -> str:
    return _detector_reason(backbone_score, flag_at, "pixels look like a StyleGAN face to the backbone detector",
                            "pixels look like a real photo to the backbone detector",
                            "backbone detector inconclusive", "backbone")


def spectral_reason(spectral_score: float, flag_at: float) -> str:
    return _detector_reason(spectral_score, flag_at, "spectrum typical of GAN upsampling",
                            "spectrum typical of camera photos", "spectrum inconclusive", "spectral")


# What a row stopped early by the cascade (facecheck.cascade) did without, by its depth
SKIPPED_REASONS = {   # depth -> what the cascade left out, under a fusion that uses the spectral detector
    "cheap": "eyes from the face detector's keypoints, no spectral detector: neither FaceMesh nor the spectral "
             "detector could change the verdict at any mode (the cascade; --depth full runs them)",
    "eyes": "spectral detector not run: it could not change the verdict at any mode (the cascade; --depth full "
            "runs it)",
}
# a fusion that gives the spectral detector no weight never runs it, so the cascade can leave out FaceMesh only
SKIPPED_REASONS_WITHOUT_SPECTRAL = {
    "cheap": "eyes from the face detector's keypoints: FaceMesh could not change the verdict at any mode (the "
             "cascade; --depth full runs it)",
}


def skipped_reason(depth: str, uses: frozenset) -> str | None:
    """The reason line for what the cascade left out of a row at `depth`, under a fusion using the detectors
    `uses` (FusionModel.uses); None where nothing was left out."""
    return (SKIPPED_REASONS if "spectral" in uses else SKIPPED_REASONS_WITHOUT_SPECTRAL).get(depth)


def geometry_reason(geometry: dict, faces_found: int, cut_by_border: bool) -> str:
    distance = geometry["template_distance"] * 100
    if geometry["template_z2"] <= ON_TEMPLATE_Z2:
        lead = f"eyes at the StyleGAN template positions, {distance:.1f}% of the width away"
    else:
        lead = f"eyes {distance:.1f}% of the width from the StyleGAN template positions"
    if faces_found > 1:
        lead += f" ({faces_found} faces; the largest is scored)"
    if cut_by_border:
        lead += " (face cut by the image border)"
    return lead


def known_match_reasons(matches: list[dict] | None) -> list[str]:
    """One reason per imported-list entry matched (the first three; the row holds them all)."""
    reasons = []
    for m in (matches or [])[:3]:
        label = f" '{m['label']}'" if m["label"] else ""
        if m["kind"] == "sha256":
            reasons.append(f"matches{label} in hash list {m['list']} (sha256: the same file)")
            continue
        bits = 256 if m["kind"] == "pdq" else 64
        reasons.append(f"matches{label} in hash list {m['list']} ({m['kind']}, {m['distance']} of {bits} bits apart)")
    if matches and len(matches) > 3:
        reasons.append(f"... and {len(matches) - 3} more hash-list entries")
    return reasons


def flagged_copy_reason(path: str) -> str:
    """For a file not flagged itself whose reuse group holds a flagged copy: the copies are one photo,
    so that copy's evidence counts for this one too (see group_gan_score)."""
    return f"a copy of this photo ({path}) was flagged as GAN"


def reuse_reason(cluster_size: int | None, seen_in: list[str] | None) -> list[str]:
    reasons = []
    if cluster_size and cluster_size > 1:
        others = cluster_size - 1
        reasons.append(f"same photo as {others} other file{'s' if others > 1 else ''} in this scan")
    if seen_in:
        scans = sorted({where.split(":", 1)[0] for where in seen_in})
        reasons.append(f"seen before in scan{'s' if len(scans) > 1 else ''} {', '.join(scans)}")
    return reasons


def judge(result, evidence: dict, fusion: FusionModel, mode: str) -> None:
    """Set a decoded file's verdict and reasons from its stored scores (gan_score, backbone_score,
    spectral_score, known_matches: facecheck.result.Result) and its `evidence`: the face geometry the
    reasons need ({"template_z2", "template_distance": None without a face, "cut_by_border"}). It is
    cheap and reads nothing but these, so a rerun judges a kept file again at its own mode and lists
    exactly as a fresh scan judges it (facecheck.pipeline keeps the evidence in the scan state)."""
    has_face = evidence["template_z2"] is not None
    geometry = {"template_z2": evidence["template_z2"], "template_distance": evidence["template_distance"]} \
        if has_face else None
    # Decided and explained from the stored, rounded scores: every place that prints a score then
    # shows the same digits, and the verdict agrees with the gan_score in the results.
    decision = fusion.decide(result.gan_score, has_face, mode)
    result.verdict = decision.verdict
    reasons = [decision_reason(decision, has_face)]
    if has_face:
        reasons.append(geometry_reason(geometry, result.faces, evidence["cut_by_border"]))
    else:
        reasons.append("no face found")
    if result.backbone_score is not None:
        reasons.append(backbone_reason(result.backbone_score, fusion.backbone_flag))
    if result.spectral_score is not None:
        reasons.append(spectral_reason(result.spectral_score, fusion.spectral_flag))
    skipped = skipped_reason(result.depth, fusion.uses)
    if skipped:
        reasons.append(skipped)
    caveat = on_template_caveat(decision, geometry, fusion.thresholds)
    if caveat:
        reasons.append(caveat)
    reasons.extend(known_match_reasons(result.known_matches))
    result.reasons = reasons
