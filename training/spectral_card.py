"""Write weights/spectral.md, the spectral detector's model card, from the calibration/evaluation run's results."""
from __future__ import annotations

from facecheck.runtime import weights_path
from training.card_writer import four, percent, table
from facecheck.spectrum import CAP_SIDE, GRID, TILE, TILES_PER_IMAGE, WHOLE_SIDE
from training.spectral_data import CALIB_FOLD, SMALL_SIDE_FRACTION, TEST_FOLD
from training.spectral_model import WHOLE_CONFIGS
from training.spectral_pack import LFW_KEEP, PACK_QUALITY, PACK_SIDE
from training.train_spectral_gpu import AUX_WEIGHT, MAX_CROP


def _source_table(by_source: dict) -> list[str]:
    return table(["source", "label", "n", "flagged at 1% FPR thr", "flagged at 0.1% FPR thr"],
                 ([src, r["label"], r["n"], percent(r["fpr_1pct"]), percent(r["fpr_0.1pct"])]
                  for src, r in sorted(by_source.items(), key=lambda kv: (kv[1]["label"], kv[0]))))


def _goal_lines(results: dict) -> list[str]:
    """The issue's goal (>= 99% of StyleGAN faces at <= 0.1% FPR; >= 95% on crops) against the test fold."""
    c = results.get("conditions", {}).get("conditions", {})
    if not c:
        return ["Per-condition benchmark not run: no verdict."]
    worst = min(r["tpr_at_fpr_0.1pct"] for r in c.values())
    best = max(r["tpr_at_fpr_0.1pct"] for r in c.values())
    crop = c["crop90_256px_q85"]
    met = worst >= 0.99 and crop["tpr_at_fpr_0.1pct"] >= 0.95
    return [f"Goal: >= 99% of StyleGAN faces flagged at <= 0.1% FPR, >= 95% on crops. {'MET' if met else 'NOT MET'} "
            f"on the test fold: at the fixed 0.1%-FPR threshold the named conditions flag {percent(worst)} to "
            f"{percent(best)} of StyleGAN faces and the 90% crop {percent(crop['tpr_at_fpr_0.1pct'])} (AUC "
            f"{c['as_stored']['auc']:.4f} as stored, {crop['auc']:.4f} on the crop); on randomly degraded copies "
            f"{percent(results['test_random_platform']['tpr_at_fpr_0.1pct'])}. "
            + ("" if met else "Use it as one signal among facecheck's others, not alone at 0.1% FPR."),
            "",
            "Against the previous model (CPU-trained native + overview tiles, card of commit c4a8123, same test fold "
            "and conditions): as stored AUC 0.9614 and 10.9% flagged at the 0.1% threshold, 90% crop AUC 0.9367 and "
            "7.5%, degraded copies AUC 0.9186 and 11.1%, StyleGAN3 left out AUC 0.8437 and 9.9%."]


def _dev_lines(dev: dict) -> list[str]:
    if not dev:
        return []
    return ["### Development choices (calibration fold, degraded copies, ROC on each candidate's summed logit)",
            dev.get("note", ""), "",
            *table(["candidate", "AUC", "TPR@1% FPR", "TPR@0.1% FPR", "tiles-branch AUC", "whole-branch AUC"],
                   ([name, four(r["sum"]["auc"]), percent(r["sum"]["roc_tpr_at_1pct_fpr"]),
                     percent(r["sum"]["roc_tpr_at_0.1pct_fpr"]),
                     *((four(r["tiles"]["auc"]), four(r["whole"]["auc"])) if "tiles" in r else ("-", "-"))]
                    for name, r in dev["candidates"].items())),
            ""]


def write_card(results: dict, date: str = "2026-11-22") -> None:
    t, s, tr = results["thresholds"], results["test_random_platform"], results["training"]
    whole_cfg = WHOLE_CONFIGS[results["config"]["whole"]]
    lines = [
        "# spectral.onnx: StyleGAN generator-trace detector (`spectral_score`)",
        "",
        f"Trained {date} on one NVIDIA H100 (rented GPU machine, 16 CPU cores for the data loader), calibrated and "
        "evaluated on this repository's CPU machine. Rebuild, from the repo root with ../shared/data present:",
        "",
        "1. `PYTHONPATH=. .venv/bin/python training/spectral_pack.py` (the training pack, `spectral_pack/pack.npz`, "
        "git-ignored: it holds copies of the licensed images)",
        f"2. on a CUDA machine with torch (2.11 was used), the pack carried along: `{results['gpu_command']}`",
        f"3. `{results['command']}` (torch 2.13 CPU in .venv; OUT = the files step 2 wrote, here kept under the "
        "ignored scratch/spx/gpu1; scratch/spx/dev.json holds the development table below; about 20 min on 2 "
        "busy cores: degraded-copy features, calibration, test fold, leave-one-source-out, the benchmark)",
        "",
        "## Status against the goal of issue 4",
        *_goal_lines(results),
        "",
        "## What it does",
        f"Input: `facecheck.spectrum.image_features(image)`: the image, area-reduced to a longer side of at most "
        f"{CAP_SIDE} px if larger, gives {GRID}x{GRID} tiles of {TILE}x{TILE} px cut at that (native) resolution on "
        f"an even grid, and a whole-image view resized to {WHOLE_SIDE}x{WHOLE_SIDE} (area when shrinking, bilinear "
        f"when enlarging); ONNX inputs `tiles` float32 [N, {TILES_PER_IMAGE}, {TILE}, {TILE}, 3] and `whole` float32 "
        f"[N, {WHOLE_SIDE}, {WHOLE_SIDE}, 3], values 0..255. Two CNNs, both fed the image and its high-pass residual "
        "(minus the 3x3 local mean): a 5-layer tile CNN (mean+max pooling) whose tile logits are averaged, and a "
        f"residual CNN on the whole view (full-resolution stem, then stages of widths {whole_cfg['widths'][1:]} with "
        f"{whole_cfg['blocks']} basic blocks, each halving the resolution; mean+max pooling). The two logits are "
        "added; Platt scaling inside the graph maps the sum to the output `score` [N], a probability that the "
        "image is a StyleGAN-family face.",
        "",
        "Why both: the native tiles are where upsampling traces live, but the StyleGAN faces of this data were "
        "already downscaled 2-4x (1024 -> 512 or 256 px) and the previous tiles-only models stalled at AUC 0.91-0.96; "
        "the whole view sees how the generator renders the face as a whole. Per branch on the test fold's degraded "
        "copies (each branch's own logit, ROC): "
        + "; ".join(f"{b}: AUC {r['auc']:.4f}, TPR {percent(r['roc_tpr_at_1pct_fpr'])} at 1% FPR, "
                    f"{percent(r['roc_tpr_at_0.1pct_fpr'])} at 0.1%" for b, r in results["test_branches"].items()) + ".",
        "",
        "Calibration: Platt scaling (logistic regression on the summed logit) fitted on the calibration fold's "
        "degraded copies with the classes weighted equally, so 0.5 means even odds at a 50/50 prior; for another "
        "prior p of StyleGAN faces, multiply the odds by p/(1-p).",
        "",
        "Operating thresholds (stored in the ONNX metadata, `SpectralDetector.thresholds()`), fixed on the real "
        f"photos of the calibration fold: 1% FPR -> score >= {t['fpr_1pct']:.6f}; 0.1% FPR -> score >= "
        f"{t['fpr_0.1pct']:.6f}.",
        "",
        "## Data",
        "../shared/data (see its README). Positives: `stylegan` (StyleGAN2 TPDNE scrapes, StyleGAN2-ADA, StyleGAN3-R). "
        "Negatives: `real_ffhq` (aligned FFHQ photos, the hard negatives) and `real_natural` (LFW, Pixabay, HELEN). "
        "`other_gen` (Stable Diffusion 2.1) is EXCLUDED from training and calibration: it is not a StyleGAN, and "
        "labelling it either way would teach the model SD's own processing (768 px PIL q75 saves); it is scored "
        "and reported apart.",
        f"Folds by `facecheck.evaluation.dataset.split_of`: fold {TEST_FOLD} test (reported, never tuned on), fold {CALIB_FOLD} "
        "calibration (Platt scaling, thresholds, the EMA-or-raw choice), folds 2-4 training.",
        "",
        "## Training (every class alike)",
        f"Training pack (`training/spectral_pack.py`): folds 2-4 only, every image once, area-reduced to at most "
        f"{PACK_SIDE} px (the scorer's own cap) and stored as JPEG q{PACK_QUALITY} 4:4:4, whatever its class; LFW "
        f"thumbnails subsampled 1 in {LFW_KEEP} to fit the 64 MiB transfer limit (the other real sources weigh as "
        "much anyway).",
        "On the GPU machine (`training/train_spectral_gpu.py`), 15 loader processes degrade every drawn image afresh "
        f"with `facecheck.evaluation.degrade.random_platform` (random crop up to {percent(MAX_CROP)} with probability 1/2, mirror, "
        f"downscale to a longer side of 96-160 px for {percent(SMALL_SIDE_FRACTION)} of draws (where LFW's thumbnails "
        "are) and 96-512 px otherwise, never enlarged, blur or sharpen, JPEG q50-98 for 90%), then compute the "
        "scorer's features. Images are drawn with balanced weights: each label weighs the same in total, a source of "
        "n images weighs sqrt(n) within its label.",
        f"Optimisation: AdamW (lr {tr['lr']}, weight decay {tr['wd']}), batch {tr['batch']}, whole-image head dropout "
        f"{results['config'].get('drop', 0.2)}, "
        + (f"mixup of image pairs (Beta({results['options']['mixup']}, {results['options']['mixup']}) weights on tiles "
           "and whole view alike, soft labels), " if results.get("options", {}).get("mixup") else "")
        + f"bf16 autocast, warm-up "
        f"then cosine decay over a fixed {tr['seconds']} s wall-time budget ({tr['steps']} steps, "
        f"{tr['images_seen']} degraded images, about {tr['images_seen'] // 2246} draws per pack image); loss: BCE on "
        f"the summed logit + {AUX_WEIGHT} x each branch's own BCE; EMA of the weights (decay 0.999). Shipped: "
        f"`{results['checkpoint']}` (ema = the weight average at the end, half = at half time, raw = the last "
        "weights), chosen on the calibration fold. The leave-one-source-out models trained with the same recipe in "
        "the same run, on the same image stream (importance-weighted, the held-out source at weight 0).",
        "",
        *_dev_lines(results.get("dev_choices", {})),
        "## Results on the test fold",
        f"Randomly degraded copies (seeded per file; crop up to 8%, the rest as in training), {s['n_stylegan']} "
        f"StyleGAN / {s['n_real']} real: AUC {s['auc']:.4f}; ROC TPR at 1% FPR {percent(s['roc_tpr_at_1pct_fpr'])}, at 0.1% "
        f"FPR {percent(s['roc_tpr_at_0.1pct_fpr'])}. At the fixed thresholds: TPR {percent(s['tpr_at_fpr_1pct'])} with FPR "
        f"{percent(s['fpr_at_fpr_1pct'])} (1% threshold); TPR {percent(s['tpr_at_fpr_0.1pct'])} with FPR "
        f"{percent(s['fpr_at_fpr_0.1pct'])} (0.1% threshold). Stable Diffusion 2.1 copies flagged: "
        f"{percent(s['other_gen_flagged_at_fpr_1pct'])} / {percent(s['other_gen_flagged_at_fpr_0.1pct'])}.",
        "",
        *_source_table(results["test_by_source"]),
        "",
    ]
    if results.get("conditions"):
        c = results["conditions"]
        lines += [
            "### Per named condition (`benchmarks/bench_spectral.py`, test fold images, through ONNX Runtime)",
            f"{c['n_images']} test-fold images (each condition applied to every one). ROC columns read the threshold "
            "off the same real photos (curve property); fixed columns use the stored thresholds (operating point). "
            "SD 2.1 = share of Stable Diffusion 2.1 images flagged.",
            "",
            *table(["condition", "AUC", "ROC TPR@1%", "ROC TPR@0.1%", "TPR / FPR at 1% thr", "TPR / FPR at 0.1% thr",
                    "SD 2.1 flagged (1% / 0.1% thr)"],
                   ([name, four(r["auc"]), percent(r["roc_tpr_at_1pct_fpr"]), percent(r["roc_tpr_at_0.1pct_fpr"]),
                     f"{percent(r['tpr_at_fpr_1pct'])} / {percent(r['fpr_at_fpr_1pct'])}",
                     f"{percent(r['tpr_at_fpr_0.1pct'])} / {percent(r['fpr_at_fpr_0.1pct'])}",
                     f"{percent(r['other_gen_flagged_at_fpr_1pct'])} / {percent(r['other_gen_flagged_at_fpr_0.1pct'])}"]
                    for name, r in c["conditions"].items())),
        ]
        lines += ["", "StyleGAN TPR per source at the 0.1% threshold, per condition:", ""]
        gan_sources = sorted(k for k, v in next(iter(c["conditions"].values()))["by_source"].items() if v["label"] == "stylegan")
        lines += table(["condition", *gan_sources],
                       ([name, *(f"{percent(r['by_source'][g]['fpr_0.1pct'])} (n={r['by_source'][g]['n']})"
                                 for g in gan_sources)] for name, r in c["conditions"].items()))
        lines += ["", f"Speed (`score()`: features + model, batched 32, ONNX Runtime CPU, this machine's 2 cores, shared "
                  f"with other agents' work, load about 5): {c['ms_per_image']} ms per image."]
        if results.get("speed_compare"):
            lines += ["Measured again interleaved with the previous model (same random images, batch 32, 5 rounds, load "
                      "about 3; ms per image, min / median): " + "; ".join(
                          f"{k}: this model {v['new_min']} / {v['new_median']}, previous {v['previous_min']} / "
                          f"{v['previous_median']}" for k, v in results["speed_compare"].items())
                      + ". So about 1.2x the previous model's cost; the previous model's card, measured on a quiet "
                      "machine, gave 8.5 ms at 512 px, which puts this one near 10-12 ms on a quiet machine."]
        lines += [""]
    if results.get("loso"):
        lines += ["## Leave one source out",
                  "Trained in the same GPU run without any image of the source (importance weight 0), calibrated on "
                  "the calibration fold of the other sources; the held-out source's degraded copies (all folds) "
                  "scored at that model's fixed thresholds; AUC against the test fold's opposite class.", "",
                  *table(["held-out source", "label", "n", "AUC", "flagged at 1% thr", "flagged at 0.1% thr"],
                         ([r["source"], r["label"], r["n"], four(r["auc_vs_test_fold"]), percent(r["flagged_at_fpr_1pct"]),
                           percent(r["flagged_at_fpr_0.1pct"])] for r in results["loso"])),
                  ""]
    lines += ["## Limits",
              "- 0.1% FPR thresholds rest on about two thousand real copies of about a thousand photos in the "
              "calibration fold: a handful of photos decide them, and the test fold has about as few.",
              "- Trained on StyleGAN2/2-ADA/3 FFHQ faces only, about 430 distinct StyleGAN images; other GANs and "
              "diffusion models are out of scope (see the SD 2.1 numbers).",
              "- A generator left out of training scores lower (leave one source out): expect less on the project's "
              "held-out set of other sources and generators.",
              "- Run-to-run spread is large: models of similar recipes from two GPU runs ranged over calibration-fold "
              "AUC 0.903-0.929 (development table); the training set holds only about 430 distinct StyleGAN images "
              "and the shipped recipe fits it almost perfectly (training loss about 0.02; mixup or weight decay did not "
              "generalise better), so more StyleGAN data, not more "
              "epochs, is what this detector needs next.",
              f"- Images larger than {CAP_SIDE} px are reduced before scoring, so traces that exist only at full "
              "1024 px resolution are not used; none of the training data was larger than 512 px.", ""]
    weights_path("spectral.md").write_text("\n".join(lines))
