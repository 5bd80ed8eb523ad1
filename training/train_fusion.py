"""Train weights/fusion.onnx: gan_score from the eye-geometry and spectral signals, and its thresholds.

    PYTHONPATH=. .venv/bin/python training/train_fusion.py                 # collect, fit, export, card
    PYTHONPATH=. .venv/bin/python training/train_fusion.py --eval-rows facecheck-eval/rows.jsonl \\
        --eval-json facecheck-eval/eval.json                               # + results and LOSO in the card

Data discipline (facecheck.dataset.split_of folds; the spectral detector and the eye template were
trained on folds 2-4, so their outputs there are optimistic and unusable for fusion):
- fold 1, half A (a second hash of the file name): fits the logistic regression;
- fold 1, half B: sets the thresholds of the three operating points (never fitted on);
- fold 0: the test fold, scored by `facecheck eval` and reported in the card, never tuned on.
Every image of every class goes through the same degradations (facecheck.evaluation.conditions plus
random platform copies with crops), and other_gen (Stable Diffusion) is left out of fitting.

Signals come from facecheck.evaluation.collect, i.e. engine.Analyzer, the object behind every scan;
they are cached in scratch/ by the digests of the models that produced them. Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck import degrade, evaluation  # noqa: E402
from facecheck.dataset import read_manifest, split_of  # noqa: E402
from facecheck.engine import Analyzer, Settings  # noqa: E402
from facecheck.runtime import weights_path  # noqa: E402
from facecheck.geometry import EyeTemplate  # noqa: E402
from facecheck.verdict import (FEATURE_NAMES, MODEL_FILE, MODES, TARGET_FPR_FFHQ,  # noqa: E402
                               TARGET_FPR_NATURAL, fusion_features)

FIT_FOLD = 1
TRAIN_CONDITIONS = ["as_stored", "400px_q90", "400px_q70", "256px_q85", "256px_q70", "150px_q80",
                    "crop90_256px_q85", "mirror_256px_q85"]
RANDOM_COPIES = 3                      # random platform copies per image, crops up to 15%
BLINDED_WEIGHT = 0.3                   # weight of the face-hidden copies (the no-face path)
LABEL_WEIGHT = {"stylegan": 1.0, "real_natural": 0.5, "real_ffhq": 0.5}   # total weight per label
MODEL_DIGESTS = ("yunet.onnx", "facemesh.onnx", "eye_template.json", "spectral.onnx", "backbone.onnx")


def half_of(path: str) -> str:
    """'A' or 'B': a second, independent split of a fold by file name."""
    return "AB"[int(hashlib.sha1(Path(path).name.encode()).hexdigest(), 16) // 5 % 2]


def random_copy(k: int):
    def apply(im):
        seed = int(hashlib.md5(im.tobytes()[:65536]).hexdigest()[:8], 16) + 7919 * k
        return degrade.random_platform(im, np.random.default_rng(seed), max_crop=0.15)
    return apply


def digest(names) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(weights_path(name).read_bytes())
    return h.hexdigest()[:10]


GEOMETRY_MODELS = ("yunet.onnx", "facemesh.onnx", "eye_template.json")


def models_digest() -> str:
    """Key of the fit-row cache: the geometry models, then the pixel detectors (spectral, backbone)."""
    return f"{digest(GEOMETRY_MODELS)}_{digest(['spectral.onnx', 'backbone.onnx'])}"


def collect_fit_rows(cache_dir: Path, per_source: int | None = None) -> list[evaluation.Row]:
    """Fold-1 signals, cached by model digests; a new spectral model reuses the cached geometry."""
    suffix = f"_{per_source}" if per_source else ""
    cache = cache_dir / f"fusion_rows_{models_digest()}{suffix}.jsonl"
    if cache.is_file():
        print(f"signals from cache {cache}")
        return evaluation.read_rows(cache)
    earlier = sorted(cache_dir.glob(f"fusion_rows_{digest(GEOMETRY_MODELS)}_*{suffix}.jsonl"))
    reuse = {(r.file, r.condition): r for r in evaluation.read_rows(earlier[-1])} if earlier else None
    samples = evaluation.select([s for s in read_manifest() if s.label != "other_gen"], folds=[FIT_FOLD],
                                per_source=per_source)
    named = evaluation.conditions(TRAIN_CONDITIONS) | {f"random_{k}": random_copy(k) for k in range(RANDOM_COPIES)}
    print(f"collecting signals: {len(samples)} images x {len(named)} conditions"
          + (f" (face geometry reused from {earlier[-1].name})" if reuse else ""))

    def progress(done, total):
        if done % 100 == 0 or done == total:
            print(f"  {done}/{total}", flush=True)

    rows = evaluation.collect(samples, named, Analyzer(Settings(device="cpu")), fuse=False,
                              reuse_geometry=reuse, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    evaluation.write_rows(rows, cache)
    return rows


def features(rows: list[evaluation.Row]) -> np.ndarray:
    """Fusion features recomputed from each row's signals (so cached signals survive feature changes)."""
    template = EyeTemplate.load()
    return np.array([fusion_features(r.spectral_score, r.geometry, template) for r in rows], np.float64)


def design(rows: list[evaluation.Row], blinded: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X, y, sample weights; with `blinded`, every face-found row also enters with its face hidden."""
    rows = [r for r in rows if r.error is None and r.label in LABEL_WEIGHT]
    X = features(rows)
    y = np.array([r.label == "stylegan" for r in rows], np.float64)
    labels = np.array([r.label for r in rows])
    w = np.zeros(len(rows))
    for label, total in LABEL_WEIGHT.items():
        m = labels == label
        w[m] = total / max(m.sum(), 1)
    if blinded:
        has = X[:, 1] > 0
        Xb = X[has].copy()
        Xb[:, 1:] = 0.0
        X, y, w = np.vstack([X, Xb]), np.concatenate([y, y[has]]), np.concatenate([w, w[has] * BLINDED_WEIGHT])
    return X, y, w / w.mean()


def fit(rows: list[evaluation.Row]):
    from sklearn.linear_model import LogisticRegression
    X, y, w = design(rows, blinded=True)
    model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(X, y, sample_weight=w)
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def predict(coef: np.ndarray, intercept: float, rows: list[evaluation.Row]) -> np.ndarray:
    return 1 / (1 + np.exp(-(features(rows) @ coef + intercept)))


def choose_thresholds(rows: list[evaluation.Row], scores: np.ndarray) -> tuple[dict, dict]:
    """Per mode: the larger of the natural-photo and FFHQ thresholds at their target FPRs. Below what
    the held-out set can resolve (fewer than 3 expected false positives), the natural-photo threshold
    is extrapolated from a normal fit to the upper decile of the negatives' logits."""
    labels = np.array([r.label for r in rows])
    natural, ffhq = scores[labels == "real_natural"], scores[labels == "real_ffhq"]
    thresholds, how = {}, {}
    for mode in MODES:
        t_nat = evaluation.threshold_at_fpr(natural, TARGET_FPR_NATURAL[mode])
        basis = "natural photos, empirical"
        if TARGET_FPR_NATURAL[mode] * len(natural) < 3:
            t_fit = tail_fit_threshold(natural, TARGET_FPR_NATURAL[mode])
            if t_fit > t_nat:
                t_nat, basis = t_fit, "natural photos, tail fit (extrapolated)"
        t_ffhq = evaluation.threshold_at_fpr(ffhq, TARGET_FPR_FFHQ[mode])
        if t_ffhq > t_nat:
            t_nat, basis = t_ffhq, "FFHQ-aligned real photos, empirical"
        thresholds[mode], how[mode] = float(t_nat), basis
    return thresholds, how


def tail_fit_threshold(neg: np.ndarray, fpr: float) -> float:
    """Fit a normal to the top 10% of the negatives' logits (matched at the 90th percentile) and
    read off the 1 - fpr quantile."""
    from scipy.stats import norm
    z = np.log(np.clip(neg, 1e-12, 1 - 1e-12) / np.clip(1 - neg, 1e-12, 1))
    q90 = np.quantile(z, 0.9)
    tail = z[z >= q90]
    sigma = max(float(np.sqrt(np.mean((tail - q90) ** 2)) / 0.8), 1e-3)   # E[(Z-z90)^2 | Z>z90] ~ (0.8 s)^2
    mu = q90 - norm.ppf(0.9) * sigma
    t = mu + norm.ppf(1 - fpr) * sigma
    return float(1 / (1 + math.exp(-t)))


def export(coef: np.ndarray, intercept: float, path: Path, metadata: dict[str, str]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("MatMul", ["features", "W"], ["z0"]),
             helper.make_node("Add", ["z0", "b"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p"]),
             helper.make_node("Reshape", ["p", "shape"], ["gan_score"])]
    inits = [numpy_helper.from_array(coef.astype(np.float32).reshape(-1, 1), "W"),
             numpy_helper.from_array(np.array([intercept], np.float32), "b"),
             numpy_helper.from_array(np.array([-1], np.int64), "shape")]
    graph = helper.make_graph(nodes, "facecheck_fusion",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(FEATURE_NAMES)])],
                              [helper.make_tensor_value_info("gan_score", TensorProto.FLOAT, ["N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="facecheck")
    model.ir_version = 8
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


pct = evaluation.percent
rate = evaluation.percent_of


def resolution_note(block: dict) -> str:
    """What one condition of the test fold can show about the FPR targets, from its counts."""
    n_nat, n_ffhq = block["n"]["real_natural"], block["n"]["real_ffhq"]
    # the upper ends of the 95% intervals if not one photo were flagged
    upper_nat, upper_ffhq = (evaluation.binomial_interval(0, n)[1] if n else 1.0 for n in (n_nat, n_ffhq))
    return (f"Per condition the fold holds {n_nat} natural and {n_ffhq} FFHQ-aligned real photos: even with no false "
            f"positive at all, the upper ends would be {pct(upper_nat)} and {pct(upper_ffhq)}, so this data can "
            "show neither the 0.1% natural-photo target nor, quite, the 1% FFHQ one; showing 0.1% takes about 3,700 "
            "independent natural photos without a false positive, and 1% about 370 FFHQ-aligned ones.")


def by_truncation(eval_rows: list[evaluation.Row], thresholds: dict[str, float]) -> list[str]:
    """Test-fold StyleGAN faces by truncation psi, where the manifest's path_in_repo records it
    (the StyleGAN3 pool: '..._psi0.70.png'), all conditions pooled."""
    import csv
    import re
    from facecheck.dataset import data_root
    root = data_root()
    if root is None:
        return []
    psi = {}
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            found = re.search(r"psi(\d+(?:\.\d+)?)", row.get("path_in_repo", ""))
            if row["label"] == "stylegan" and found:
                psi[Path(row["file"]).name] = found.group(1)
    groups: dict[str, list[evaluation.Row]] = {}
    for r in eval_rows:
        if r.error is None and Path(r.file).name in psi:
            groups.setdefault(psi[Path(r.file).name], []).append(r)
    if not groups:
        return []
    lines = ["| truncation psi | images | copies | flagged, default | flagged, sensitive | median spectral score |",
             "|---|---|---|---|---|---|"]
    for value in sorted(groups, key=float):
        rows = groups[value]
        scores = np.array([r.gan_score for r in rows])
        lines.append(f"| {value} | {len({r.file for r in rows})} | {len(rows)} | "
                     f"{pct(np.mean(scores >= thresholds['default']))} | {pct(np.mean(scores >= thresholds['sensitive']))} | "
                     f"{np.median([r.spectral_score for r in rows]):.2f} |")
    return lines


def loso(fit_rows: list[evaluation.Row], eval_rows: list[evaluation.Row], spectral_flag: float) -> list[str]:
    """Leave one StyleGAN source out of the fusion fit and thresholds; score it on the test fold."""
    lines = ["| held-out source | n (test-fold copies) | flagged, default | flagged, sensitive | flagged, strict |",
             "|---|---|---|---|---|"]
    goal = {"400px_q90", "400px_q70", "256px_q85", "256px_q70"}
    for source in sorted({r.source for r in fit_rows if r.label == "stylegan"}):
        keep = [r for r in fit_rows if r.source != source]
        coef, b = fit([r for r in keep if half_of(r.file) == "A"])
        thr_rows = [r for r in keep if half_of(r.file) == "B" and r.error is None]
        thresholds, _ = choose_thresholds(thr_rows, predict(coef, b, thr_rows))
        held = [r for r in eval_rows if r.source == source and r.error is None and r.condition in goal]
        if not held:
            continue
        s = predict(coef, b, held)
        lines.append(f"| {source} | {len(held)} | {pct(np.mean(s >= thresholds['default']))} | "
                     f"{pct(np.mean(s >= thresholds['sensitive']))} | {pct(np.mean(s >= thresholds['strict']))} |")
    return lines


def write_card(path: Path, coef, intercept, thresholds, how, fit_rows, thr_rows, spectral_flag,
               eval_json: Path | None, eval_rows: list | None) -> None:
    counts = {}
    for r in fit_rows:
        if r.error is None:
            key = ("A" if half_of(r.file) == "A" else "B", r.label)
            counts[key] = counts.get(key, 0) + 1
    lines = [
        "# fusion.onnx: one gan_score from eye geometry and spectrum",
        "",
        f"Built {datetime.date.today().isoformat()} by `PYTHONPATH=. .venv/bin/python training/train_fusion.py` "
        "(then `facecheck eval` on the test fold, and the same script with `--eval-rows/--eval-json` to add the "
        "results below). CPU only, a few minutes once the signals are collected.",
        "",
        "## What it is",
        "A logistic regression, exported as a 4-node ONNX graph (MatMul, Add, Sigmoid, Reshape), over the features "
        "of `facecheck.verdict.fusion_features`: the spectral detector's logit, a has-face flag, log(1 + template_z2) "
        "of the eye geometry with hinges at fixed knots (a piecewise-linear term), whether the face is cut by "
        "the border, the squared horizontal, vertical, scale and roll deviations from the template in units of the "
        "template's spreads (capped at 20 spreads), and the face box's width and height as fractions of the frame. "
        "So logit(gan_score) = spectral evidence + geometry evidence + intercept. The separate squared terms let the "
        "fit learn that StyleGAN faces (truncated sampling) sit tighter on the template than real FFHQ-aligned photos; "
        "on fold 1 they raised the TPR at 0.1% natural-photo FPR from 77% to 89% (half B), not the FFHQ separation. "
        "Tried and left out: the same squared deviations for FaceMesh's nose tip, mouth centre and chin (StyleGAN "
        "scatters them 0.55-0.8x as much as real FFHQ photos; geometry alone vs FFHQ AUC 0.739 -> 0.785), which "
        "moved the fused AUC against FFHQ from 0.8508 to 0.8514 and TPR at 1% FFHQ FPR from 38.1% to 38.9% on "
        "fold 1 half B: within noise, not worth a larger template.",
        "",
        "| feature | weight |",
        "|---|---|",
        *[f"| {name} | {w:+.4f} |" for name, w in zip(FEATURE_NAMES, coef)],
        f"| intercept | {intercept:+.4f} |",
        "",
        "Reuse signals (cluster size, seen before) are not inputs: a reused photo is as likely real (stolen) as "
        "generated, so they would only teach this data's composition; the verdict's reasons report them beside it.",
        "",
        "No face found: every geometry feature and has_face are 0, so gan_score rests on the spectrum alone; the fit "
        f"includes each face-found copy a second time with its face hidden (weight {BLINDED_WEIGHT}) to learn that "
        "path. Such an image is flagged `gan` when it clears the threshold, else its verdict is `no_face`.",
        "",
        "## Data and protocol",
        "../shared/data, folds by `facecheck.dataset.split_of` (hash of the file name). The spectral detector and "
        "the eye template are trained on folds 2-4 (their outputs there would be optimistic). Fold 1 is split by a "
        "second hash into half A (fitting) and half B (thresholds only); fold 0 is the test fold, never tuned on.",
        f"Each image enters under the conditions {', '.join(TRAIN_CONDITIONS)} and {RANDOM_COPIES} random platform "
        "copies (`facecheck.degrade.random_platform`, crops up to 15%, mirror, 96-512 px, blur/sharpen, JPEG q50-98), "
        "every class alike. Weights: stylegan 1, real_natural 0.5, real_ffhq 0.5 in total; other_gen (Stable "
        "Diffusion) is not fitted on.",
        "",
        "| split | stylegan | real_ffhq | real_natural (copies) |",
        "|---|---|---|---|",
        *[f"| fold 1 half {h} | {counts.get((h, 'stylegan'), 0)} | {counts.get((h, 'real_ffhq'), 0)} | "
          f"{counts.get((h, 'real_natural'), 0)} |" for h in "AB"],
        "",
        "## Operating points (in the ONNX metadata; `--mode` in the CLI, `Settings(mode=...)` in the API)",
        "Each threshold is the larger of two, both on fold 1 half B: the natural-photo threshold at the mode's target "
        "FPR and the FFHQ-aligned threshold at its own target.",
        "",
        "| mode | target FPR natural | target FPR FFHQ | threshold | set by |",
        "|---|---|---|---|---|",
        *[f"| {m} | {TARGET_FPR_NATURAL[m] * 100:g}% | {TARGET_FPR_FFHQ[m] * 100:g}% | {thresholds[m]:.4f} | {how[m]} |"
          for m in MODES],
        "",
        f"The reason line 'spectrum typical of GAN upsampling' appears at spectral score >= {spectral_flag:.4f} "
        "(the spectral detector's own 1%-FPR threshold).",
        "",
        "Tried and left out (2026-11-23, one-off script over the cached fold-1 signals and the test-fold rows below): "
        "separate thresholds for faces on and off the template, each meeting both targets within its stratum on half "
        "B, would let the spectrum flag more cropped StyleGAN faces (the geometry term pulls their fused score down). "
        "With the cut at template_z2 = 9, the 90% crop rose from 8.8% to 38.1% flagged, but the uncropped goal "
        "conditions fell from 35-43% to 29-34% and cropped FFHQ-aligned real photos were flagged 5.5% of the time: "
        "the off-template stratum holds too few FFHQ photos (396 degraded copies of half B's 66) to hold a 1% threshold. Cuts at "
        "25, 50 and 100 moved the crop to 30.6%, 11.6% and 8.8% with the same trade. One global threshold stays.",
    ]
    if eval_json is not None:
        summary = json.loads(Path(eval_json).read_text())["summary"]
        goal = [c for c in ("400px_q70", "256px_q85", "256px_q70") if c in summary["by_condition"]]
        bc = summary["by_condition"]
        crop = bc.get("crop90_256px_q85", {}).get("default", {})
        lines += ["", "## Status against the goal of the issue", "",
                  "Goal: at 400 and 256 px, JPEG q70-85, StyleGAN TPR >= 99% with FPR <= 0.1% on natural photos and "
                  "<= 1% on FFHQ-aligned real photos; >= 95% on a 90% crop. **Not met.** Default mode on the test fold:",
                  "", *[f"- {c}: TPR {rate(bc[c]['default'], 'tpr')}, FPR natural "
                        f"{rate(bc[c]['default'], 'flagged_real_natural')}, FPR FFHQ "
                        f"{rate(bc[c]['default'], 'flagged_real_ffhq')}" for c in goal],
                  f"- crop90_256px_q85: TPR {rate(crop, 'tpr') if crop else 'n/a'}",
                  "", "In brackets: 95% exact (Clopper-Pearson) intervals over the test fold's images; each image enters "
                  "a condition once. " + resolution_note(bc[goal[0]]) if goal else "",
                  "", "Against natural photos alone the fusion separates well (ROC AUC ~0.999; TPR at 0.1% natural FPR read "
                  "off the curve in the table below). What holds the TPR down is the FFHQ-aligned constraint: among aligned "
                  "faces only the spectral detector separates StyleGAN from real photos (AUC ~0.88 here), and its tail "
                  "sets the threshold."]
        lines += ["", "## Results on the test fold (fold 0), `facecheck eval`", "",
                  f"Command: `{json.loads(Path(eval_json).read_text()).get('command', '')}`", "",
                  "Operating-point rates: share flagged at the stored thresholds, with 95% intervals in brackets. ROC "
                  "columns: TPR when the threshold is read off this fold's own natural photos (a property of the curve, "
                  "not an operating point).", "",
                  "| condition | AUC vs natural | AUC vs FFHQ | ROC TPR @0.1% natural | TPR default | FPR natural | "
                  "FPR FFHQ | TPR strict | TPR sensitive | SD 2.1 flagged (default) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c, b in list(summary["by_condition"].items()) + [("all conditions", summary["all_conditions"])]:
            d = b["default"]
            lines.append(f"| {c} | {b['auc_vs_real_natural']:.4f} | {b['auc_vs_real_ffhq']:.4f} | "
                         f"{pct(b['roc_tpr_at_0.001_fpr_real_natural'])} | {rate(d, 'tpr')} | "
                         f"{rate(d, 'flagged_real_natural')} | {rate(d, 'flagged_real_ffhq')} | {pct(b['strict']['tpr'])} | "
                         f"{pct(b['sensitive']['tpr'])} | {pct(d['flagged_other_gen'])} |")
        lines += ["", "Per source (all conditions; share flagged):", "",
                  "| source | copies | default | strict | sensitive |", "|---|---|---|---|---|"]
        for src, b in summary["by_source"].items():
            lines.append(f"| {src} | {b['n']} | {pct(b['default'])} | {pct(b['strict'])} | {pct(b['sensitive'])} |")
    if eval_rows:
        lines += ["", "## Leave one source out (fusion layer)",
                  "The fusion fit and thresholds are redone without the source; the source's test-fold copies at "
                  "400 and 256 px, JPEG q70-90, are then scored. The spectral detector and eye template were still "
                  "trained with that source's fold 2-4 images (see weights/spectral.md for the spectral LOSO).", ""]
        lines += loso(fit_rows, eval_rows, spectral_flag)
        truncation = by_truncation(eval_rows, thresholds)
        if truncation:
            lines += ["", "## By truncation (what the detector has learned)",
                      "StyleGAN samples with a truncation psi below 1 are pulled towards the average face: smoother, "
                      "more alike, tighter on the eye template. The StyleGAN3 pool records psi in its file names; its "
                      "test-fold faces, all conditions pooled:", "", *truncation, "",
                      "Only 7-11 images per value, but the trend is steep, and the spectral score itself falls with "
                      "psi: the detectors have learned much of the truncated look rather than generator traces alone "
                      "(most training StyleGAN faces are thispersondoesnotexist.com scrapes, whose psi is not "
                      "recorded). Untruncated samples are hardly ever flagged: expect misses on them. The StyleGAN2-"
                      "ADA PyTorch source (0% flagged) is probably one: its psi is not recorded either, but 1 is "
                      "generate.py's default, and two of its five test-fold faces sit off the template in scale."]
    lines += ["", "## Limits",
              "- Thresholds rest on a few thousand degraded copies of a few hundred real photos; the strict point is "
              "extrapolated, not measured.",
              "- Real photos in FFHQ alignment look like StyleGAN to the geometry by construction: among them only "
              "the spectrum separates, so the FFHQ constraint sets the thresholds wherever it binds (see 'set by').",
              "- Stable Diffusion and other generators are out of scope: the eye template does not fit them and the "
              "spectral detector was trained on StyleGAN only."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=REPO / "scratch")
    parser.add_argument("--eval-rows", type=Path, help="rows.jsonl of `facecheck eval` on fold 0 (for LOSO)")
    parser.add_argument("--eval-json", type=Path, help="eval.json of that run (results tables in the card)")
    parser.add_argument("--output", type=Path, default=weights_path(MODEL_FILE))
    parser.add_argument("--per-source", type=int, default=300,
                        help="at most this many images per source and fold (LFW has ~745 a fold; 300 keeps the "
                             "collection to ~10 min on 2 cores)")
    parser.add_argument("--collect-only", action="store_true", help="collect (and cache) the fold-1 signals, then stop")
    args = parser.parse_args()

    from facecheck.runtime import Runtime
    from facecheck.spectrum import SpectralDetector
    spectral_flag = SpectralDetector(Runtime("cpu")).thresholds()["fpr_1pct"]

    rows = collect_fit_rows(args.cache, args.per_source)
    if args.collect_only:
        return
    fit_rows = [r for r in rows if half_of(r.file) == "A"]
    thr_rows = [r for r in rows if half_of(r.file) == "B" and r.error is None and r.label != "other_gen"]
    coef, intercept = fit(fit_rows)
    thresholds, how = choose_thresholds(thr_rows, predict(coef, intercept, thr_rows))
    for name, w in zip(FEATURE_NAMES, coef):
        print(f"  {name:24s} {w:+.4f}")
    print(f"  intercept {intercept:+.4f}\nthresholds {thresholds} ({how})")
    metadata = {f"threshold_{m}": repr(t) for m, t in thresholds.items()}
    metadata |= {"spectral_flag": repr(spectral_flag), "features": ",".join(FEATURE_NAMES),
                 "trained": datetime.date.today().isoformat(), "signals_from_models": models_digest()}
    export(coef, intercept, args.output, metadata)
    print(f"wrote {args.output}")
    eval_rows = evaluation.read_rows(args.eval_rows) if args.eval_rows else None
    write_card(args.output.with_suffix(".md"), coef, intercept, thresholds, how, rows, thr_rows, spectral_flag,
               args.eval_json, eval_rows)
    print(f"wrote {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
