"""Calibrate and ship a spectral detector trained on the GPU, then write weights/spectral.md.

    PYTHONPATH=. .venv/bin/python training/spectral_pack.py                  # 1. the compact training pack
    # 2. on the GPU machine (see weights/spectral.md for the exact command):
    #    python3 training/train_spectral_gpu.py --pack spectral_pack/pack.npz --out OUT --model main=base ...
    PYTHONPATH=. .venv/bin/python training/train_spectral.py --from-gpu OUT   # 3. here, on the CPU

Step 3 reads the chosen checkpoint (--model OUT/NAME.pt, --weights ema|raw|half; the choice is made on the
calibration fold and recorded in --dev-json) and OUT/loso_*.pt (leave-one-source-out models), fits Platt scaling and the operating thresholds on the calibration fold,
exports weights/spectral.onnx, and reports on the test fold. Folds by facecheck.evaluation.dataset.split_of: fold 0 is the
test fold (never trained or tuned on), fold 1 the calibration fold, folds 2-4 train (the only folds in the pack).
Every image is degraded the same random platform way whatever its class (training/spectral_data.py).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecheck.runtime import weights_path
from facecheck.spectrum import MODEL_FILE, TILE, TILES_PER_IMAGE, WHOLE_SIDE
from training.spectral_data import CACHE_DIR, CALIB_FOLD, TEST_FOLD, FeatureSet, cached_feature_set
from facecheck.evaluation.evaluate import auc, share_flagged, threshold_at_fpr, tpr_at_fpr
from training.spectral_model import TRAIN_LABELS, SpectralNet, export_onnx, fit_platt, platt_score

FPRS = {"fpr_1pct": 0.01, "fpr_0.1pct": 0.001}
REAL_LABELS = ("real_ffhq", "real_natural")
CARD_DATE = "2026-11-22"
RESULTS = CACHE_DIR / "spectral_results.json"   # the last run's numbers


class _Logits(nn.Module):
    """The uncalibrated summed logit and each branch's own logit, for fast ONNX Runtime scoring in development."""

    def __init__(self, model: SpectralNet):
        super().__init__()
        self.model = model

    def forward(self, tiles, whole):
        t, w = self.model.branch_logits(tiles, whole)
        return t + w, t, w


WEIGHTS = {"ema": "ema_state_dict", "raw": "state_dict", "half": "ema_half_state_dict"}


def load_checkpoint(path, which: str = "ema") -> SpectralNet:
    """which: "ema" (the weight average at the end), "raw" (the last weights) or "half" (the average at half time)."""
    ckpt = torch.load(path, map_location="cpu")
    model = SpectralNet(**ckpt["config"])
    model.load_state_dict(ckpt[WEIGHTS[which]])
    return model.eval()


def branch_logits(model: SpectralNet, fs: FeatureSet, batch: int = 64) -> np.ndarray:
    """float64 [N, 3]: summed, tile-branch and whole-branch logits of a feature set, through ONNX Runtime."""
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logits.onnx"
        dummy = (torch.zeros(2, TILES_PER_IMAGE, TILE, TILE, 3), torch.zeros(2, WHOLE_SIDE, WHOLE_SIDE, 3))
        torch.onnx.export(_Logits(model.eval()), dummy, str(path), input_names=["tiles", "whole"],
                          output_names=["logit", "tile_logit", "whole_logit"],
                          dynamic_axes={"tiles": {0: "n"}, "whole": {0: "n"}, "logit": {0: "n"},
                                        "tile_logit": {0: "n"}, "whole_logit": {0: "n"}}, opset_version=17, dynamo=False)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = []
        for i in range(0, len(fs.label), batch):
            res = sess.run(None, {"tiles": np.asarray(fs.tiles[i:i + batch], np.float32),
                                  "whole": np.asarray(fs.whole[i:i + batch], np.float32)})
            out.append(np.stack([r.reshape(-1) for r in res], axis=1))
    return np.concatenate(out).astype(np.float64)


def roc_summary(pos: np.ndarray, neg: np.ndarray) -> dict:
    return {"auc": auc(neg, pos), "roc_tpr_at_1pct_fpr": tpr_at_fpr(neg, pos, 0.01),
            "roc_tpr_at_0.1pct_fpr": tpr_at_fpr(neg, pos, 0.001)}


def calibrated(logits: np.ndarray, calib: FeatureSet):
    """Platt scaling and the operating thresholds, both from the calibration fold's training labels."""
    keep = np.isin(calib.label, TRAIN_LABELS)
    platt = fit_platt(logits[keep], calib.is_gan[keep])
    scores = platt_score(platt, logits)
    real = scores[np.isin(calib.label, REAL_LABELS)]
    return platt, {name: threshold_at_fpr(real, fpr) for name, fpr in FPRS.items()}


def rates_by_source(scores: np.ndarray, fs: FeatureSet, thresholds: dict[str, float]) -> dict[str, dict]:
    """Share of each source's copies flagged at each fixed threshold (TPR for StyleGAN, FPR for real sources)."""
    out = {}
    for src in np.unique(fs.source):
        s = scores[fs.source == src]
        out[str(src)] = {"label": str(fs.label[fs.source == src][0]), "n": int(len(s)),
                         **{name: share_flagged(s, t) for name, t in thresholds.items()}}
    return out


def summary(scores: np.ndarray, fs: FeatureSet, thresholds: dict[str, float]) -> dict:
    pos, neg = scores[fs.label == "stylegan"], scores[np.isin(fs.label, REAL_LABELS)]
    return {"n_stylegan": int(len(pos)), "n_real": int(len(neg)), **roc_summary(pos, neg),
            **{f"tpr_at_{k}": share_flagged(pos, t) for k, t in thresholds.items()},
            **{f"fpr_at_{k}": share_flagged(neg, t) for k, t in thresholds.items()},
            **{f"other_gen_flagged_at_{k}": share_flagged(scores[fs.label == "other_gen"], t) for k, t in thresholds.items()}}


def leave_one_source_out(checkpoint: Path, fs: FeatureSet, which: str = "ema", log=print) -> dict:
    """A model trained without one source (OUT/loso_*.pt): calibrated on the calibration fold of the other sources,
    the held-out source's degraded copies (all folds) scored at the fixed thresholds, AUC against the test fold's
    opposite class."""
    ckpt = torch.load(checkpoint, map_location="cpu")
    source = ckpt["held_out"]
    model = load_checkpoint(checkpoint, which)
    rest = fs.source != source
    calib = fs.subset(rest & (fs.fold == CALIB_FOLD) & np.isin(fs.label, TRAIN_LABELS))
    platt, thresholds = calibrated(branch_logits(model, calib)[:, 0], calib)
    held = fs.subset(~rest)
    held_scores = platt_score(platt, branch_logits(model, held)[:, 0])
    is_gan = bool(held.is_gan[0])
    opposite = fs.subset(rest & (fs.fold == TEST_FOLD) & (np.isin(fs.label, REAL_LABELS) if is_gan else fs.label == "stylegan"))
    opposite = platt_score(platt, branch_logits(model, opposite)[:, 0])
    pos, neg = (held_scores, opposite) if is_gan else (opposite, held_scores)
    r = {"source": source, "label": str(held.label[0]), "n": int(len(held_scores)), "auc_vs_test_fold": auc(neg, pos),
         **{f"flagged_at_{k}": share_flagged(held_scores, t) for k, t in thresholds.items()},
         "weights": which, "options": ckpt.get("options", {}), "checkpoint": str(checkpoint)}
    log(json.dumps(r))
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint from train_spectral_gpu.py, e.g. OUT/main.pt")
    ap.add_argument("--card-only", action="store_true", help="rewrite weights/spectral.md from the last run's results")
    ap.add_argument("--speed-json", help="with --card-only: an interleaved speed comparison to add to the card")
    ap.add_argument("--weights", default="ema", choices=sorted(WEIGHTS))
    ap.add_argument("--loso", nargs="*", default=[], help="leave-one-source-out checkpoints (OUT/loso_*.pt)")
    ap.add_argument("--dev-json", help="calibration-fold comparison of the candidates, for the model card")
    ap.add_argument("--no-bench", action="store_true", help="skip the per-condition benchmark in the model card")
    ap.add_argument("--gpu-command", default="", help="the train_spectral_gpu.py command line, for the model card")
    args = ap.parse_args(argv)
    from training.spectral_card import write_card
    command = "PYTHONPATH=. .venv/bin/python training/train_spectral.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.card_only:
        results = json.loads(RESULTS.read_text())
        if args.speed_json:
            results["speed_compare"] = json.loads(Path(args.speed_json).read_text())
            RESULTS.write_text(json.dumps(results, indent=1))
        write_card(results)
        return 0

    fs = cached_feature_set()
    calib = fs.subset((fs.fold == CALIB_FOLD) & np.isin(fs.label, TRAIN_LABELS))
    test = fs.subset(fs.fold == TEST_FOLD)
    print(f"{len(calib.label)} calibration copies, {len(test.label)} test copies")
    best = f"{Path(args.model).stem}/{args.weights}"
    print(f"chosen: {best}")
    ckpt = torch.load(args.model, map_location="cpu")
    model = load_checkpoint(args.model, args.weights)

    platt, thresholds = calibrated(branch_logits(model, calib)[:, 0], calib)
    out = weights_path(MODEL_FILE)
    export_onnx(model, out, {f"threshold_{k}": f"{v:.6f}" for k, v in thresholds.items()}
                | {"trained": CARD_DATE, "rebuild": command, "platt": f"{platt[0]:.6f},{platt[1]:.6f}"}, platt=platt)
    print(f"wrote {out}; Platt {platt}; thresholds {thresholds}")
    torch.save({"config": model.config, "state_dict": model.state_dict()}, CACHE_DIR / "spectral_model.pt")

    test_logits = branch_logits(model, test)
    test_scores = platt_score(platt, test_logits[:, 0])
    tp, tn = test_logits[test.is_gan == 1], test_logits[np.isin(test.label, REAL_LABELS)]
    results = {"command": command, "gpu_command": args.gpu_command, "checkpoint": best,
               "training": {k: ckpt[k] for k in ("steps", "images_seen", "seconds", "batch", "lr", "wd")},
               "options": ckpt.get("options", {}), "config": model.config, "thresholds": thresholds, "platt": platt,
               "dev_choices": json.loads(Path(args.dev_json).read_text()) if args.dev_json else {},
               "test_random_platform": summary(test_scores, test, thresholds),
               "test_branches": {b: roc_summary(tp[:, j], tn[:, j]) for j, b in enumerate(("sum", "tiles", "whole"))},
               "test_by_source": rates_by_source(test_scores, test, thresholds)}
    print(json.dumps(results["test_random_platform"], indent=1))
    RESULTS.write_text(json.dumps(results, indent=1))
    results["loso"] = [leave_one_source_out(Path(p), fs, args.weights) for p in args.loso]
    RESULTS.write_text(json.dumps(results, indent=1))
    if not args.no_bench:
        from benchmarks.bench_spectral import evaluate_conditions
        results["conditions"] = evaluate_conditions()
    RESULTS.write_text(json.dumps(results, indent=1))
    write_card(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
