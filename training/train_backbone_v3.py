"""Train the v3 StyleGAN detector (issue 20) on the CPU: EfficientNet-Lite0 reading the whole image at 128 px and/or
native-resolution patches, resumable from a checkpoint written each epoch.

    nice -n 19 /work/venv-train/bin/python training/backbone3_data.py                  # cached frozen features
    nice -n 19 /work/venv-train/bin/python training/train_backbone_v3.py train --run both
    nice -n 19 /work/venv-train/bin/python training/train_backbone_v3.py train --run whole --view whole
    nice -n 19 /work/venv-train/bin/python training/train_backbone_v3.py train --run both_no_msg \\
        --without mobilestylegan                                                        # what MobileStyleGAN adds
    nice -n 19 /work/venv-train/bin/python training/train_backbone_v3.py train --run both_no_aligned \\
        --without 'aligned_*'                                                           # what aligned reals add
    nice -n 19 /work/venv-train/bin/python training/train_backbone_v3.py train --run whole_plain --view whole \\
        --colours none colour_cast                                                      # no colourless copies
    nice -n 19 /work/venv-train/bin/python training/train_backbone_v3.py train --run loso_hardfake \\
        --hold-out hardfake_tpdne_300                                                   # leave one source out
    /work/venv-train/bin/python training/train_backbone_v3.py curves --run both        # the learning curves
    /work/venv-train/bin/python training/train_backbone_v3.py soup --run soup --of run_a run_b   # weights averaged

Rerunning the same `train` command after an interruption resumes from scratch/bb3/<run>/last.pt (model, optimiser,
schedule, random state, history), at the start of the epoch after the last finished one.

Views (training/backbone3_data.py): `whole` (the image squashed to 128 px, as the shipped v2), `patches` (native
128 px patches, embeddings averaged), `both` (the two embeddings concatenated; a copy without native patches, i.e.
under 128 px, uses its whole-image embedding in their place). The trunk after the frozen prefix is shared by the
views and fine-tuned; a new linear layer reads the pooled embedding(s).

Batches (the size trap of ../shared/notes.md): each label gets a fixed share (stylegan 1/2, real_ffhq 1/4,
real_natural 1/4), and within a label every size bin of the degraded copy (SIZE_BINS, longer side) the same share,
so all classes are drawn with one size distribution; within a (label, bin) cell a source of n copies weighs
sqrt(n), MobileStyleGAN at most MINORITY_SHARE of its cell (it is a distillation, not StyleGAN proper).

Epoch choice, fixed before training: on the calibration fold (fold 1), TPR at 1% real FPR with the real StyleGAN
sources as positives (MobileStyleGAN excluded) and every real photo as negatives (aligned copies included), ties
broken by AUC; training stops after PATIENCE epochs without a better one or at --epochs. The test fold (0) is
not read by this script.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.backbone import INPUT_SIDE  # noqa: E402
from facecheck.evaluation.evaluate import auc, threshold_at_fpr, tpr_at_fpr  # noqa: E402
from training import backbone_model as bm  # noqa: E402
from training import backbone3_data as data  # noqa: E402
from training.colour_augment import CHOICES  # noqa: E402

RUNS_DIR = REPO / "scratch" / "bb3"
LABEL_WEIGHT = {"stylegan": 0.5, "real_ffhq": 0.25, "real_natural": 0.25}
SIZE_BINS = (160, 256, 384)           # longer side: <160, 160-255, 256-383, >=384
MINORITY_SOURCES = ("mobilestylegan",)
MINORITY_SHARE = 0.25
CRITERION = ("tpr_at_1pct_real_fpr", "auc")
PATIENCE = 4
VIEWS = ("whole", "patches", "both")
COLOUR_CHANGES = ("none", *(name for name, _ in CHOICES))


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def size_bin(side: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(SIZE_BINS), side, side="right")


def excluded(source: np.ndarray, patterns: list[str]) -> np.ndarray:
    return np.array([any(fnmatch.fnmatchcase(s, p) for p in patterns) for s in source], bool)


def sample_weights(label: np.ndarray, source: np.ndarray, side: np.ndarray, without: list[str],
                   colour: np.ndarray | None = None, colours: list[str] | None = None,
                   size_match: bool = True, boost: dict[str, float] | None = None) -> np.ndarray:
    """Drawing probabilities: label shares, equal size-bin shares within a label, sqrt(n) sources within a cell
    (times `boost`'s factor for a source it names), minority sources capped; sources matching `without` get 0, and
    so do copies whose colour change (the cache's `colour`) is not in `colours` when that is given. Without
    size_match all copies share one bin (the v2 recipe's draw: label shares, sqrt(n) sources within a label)."""
    boost = boost or {}
    w = np.zeros(len(label))
    keep = ~excluded(source, without)
    if colours is not None:
        keep &= np.isin(colour, colours)
    bins = size_bin(side) if size_match else np.zeros(len(label), int)
    for lab, share in LABEL_WEIGHT.items():
        present = [b for b in np.unique(bins[(label == lab) & keep])]
        for b in present:
            cell = (label == lab) & (bins == b) & keep
            srcs = np.unique(source[cell])
            sq = {s: np.sqrt((source[cell] == s).sum()) * boost.get(s, 1.0) for s in srcs}
            total = sum(sq.values())
            shares = {s: v / total for s, v in sq.items()}
            minority = [s for s in srcs if s in MINORITY_SOURCES]
            if minority and len(srcs) > len(minority):
                capped = {s: min(shares[s], MINORITY_SHARE) for s in minority}
                rest = 1 - sum(capped.values())
                others = sum(v for s, v in shares.items() if s not in minority)
                shares = {s: capped[s] if s in capped else v / others * rest for s, v in shares.items()}
            for s in srcs:
                ms = cell & (source == s)
                w[ms] = share / len(present) * shares[s] / ms.sum()
    return w / w.sum()


class V3Detector(nn.Module):
    """The fine-tuned trunk of EfficientNet-Lite0 shared by the views, and a linear layer on the pooled embeddings."""

    def __init__(self, view: str, pretrained: bool = True):
        super().__init__()
        self.view = view
        self.net = bm.build(INPUT_SIDE, pretrained=pretrained)
        self.fc = nn.Linear(1280 * (2 if view == "both" else 1), 1)
        self.dropout = nn.Dropout(0.2)

    def forward(self, whole: torch.Tensor, patches: torch.Tensor, has_patches: torch.Tensor) -> torch.Tensor:
        """whole [N, C, H, W] prefix features; patches [M, K, C, H, W] for the M rows where has_patches [N] is True."""
        parts = []
        e_whole = bm.embed(self.net, whole) if self.view in ("whole", "both") else None
        if self.view in ("patches", "both"):
            if self.view == "patches":
                # rows without native patches fall back to the squashed whole image, the only view they have
                e_patch = bm.embed(self.net, whole[~has_patches]) if (~has_patches).any() else None
                base = torch.zeros(len(whole), 1280)
                if e_patch is not None:
                    base[~has_patches] = e_patch
            else:
                base = e_whole.clone()
            if len(patches):
                k = patches.shape[1]
                e = bm.embed(self.net, patches.flatten(0, 1)).view(len(patches), k, -1).mean(dim=1)
                base = base.clone()
                base[has_patches] = e
            parts = [e_whole, base] if self.view == "both" else [base]
        else:
            parts = [e_whole]
        return self.fc(self.dropout(torch.cat(parts, dim=1))).reshape(-1)

    def trainable(self):
        return bm.trainable_parameters(self.net)[:-2] + list(self.fc.parameters())   # the net's own _fc is unused


def batch_inputs(d: dict, idx: np.ndarray):
    idx_t = torch.from_numpy(idx)
    po = d["patch_of"][idx_t]
    has = po >= 0
    return d["whole"][idx_t].float(), d["patches"][po[has]].float(), has


def logits_of(model: V3Detector, d: dict, rows: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            out.append(model(*batch_inputs(d, rows[i:i + batch])))
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def threshold(neg: np.ndarray, fpr: float) -> float:
    return threshold_at_fpr(neg, fpr) if len(neg) else -np.inf


def share_above(scores: np.ndarray, t: float) -> float | None:
    return float(np.mean(scores >= t)) if len(scores) else None


def calib_metrics(logit: np.ndarray, d: dict, rows: np.ndarray) -> dict:
    lab, src, side, colour = d["label"][rows], d["source"][rows], d["side"][rows], d["colour"][rows]
    real = np.isin(lab, ("real_ffhq", "real_natural"))
    msg = np.isin(src, MINORITY_SOURCES)
    pos = (lab == "stylegan") & ~msg
    aligned = np.char.startswith(src.astype(str), "aligned_")
    t1 = threshold(logit[real], 0.01)
    t_default = max(threshold(logit[lab == "real_natural"], 1e-3), threshold(logit[lab == "real_ffhq"], 1e-2))
    out = {"auc": auc(logit[real], logit[pos]), "tpr_at_1pct_real_fpr": tpr_at_fpr(logit[real], logit[pos], 0.01),
           "tpr_default": share_above(logit[pos], t_default),
           "auc_vs_ffhq_original": auc(logit[(lab == "real_ffhq") & ~aligned], logit[pos]),
           "auc_vs_aligned_copies": auc(logit[aligned], logit[pos]) if aligned.any() else None,
           "auc_vs_natural": auc(logit[lab == "real_natural"], logit[pos]),
           "mobilestylegan_tpr_at_1pct": share_above(logit[msg], t1),
           "greyscale_tpr_at_1pct": share_above(logit[pos & (colour == "greyscale")], t1),
           "colour_tpr_at_1pct": share_above(logit[pos & (colour == "none")], t1),
           "by_size_bin": {}}
    bins = size_bin(side)
    for b in range(len(SIZE_BINS) + 1):
        m = bins == b
        out["by_size_bin"][str(b)] = {"n_pos": int((pos & m).sum()), "n_real": int((real & m).sum()),
                                      "auc": auc(logit[real & m], logit[pos & m]) if (pos & m).any() and (real & m).any() else None,
                                      "tpr_at_1pct": share_above(logit[pos & m], t1)}
    return out


def calibration_rows(ca: dict, hold_out: list[str], calib_max: int, seed: int) -> np.ndarray:
    rows = np.flatnonzero(~excluded(ca["source"], hold_out))
    if calib_max and len(rows) > calib_max:
        # a fixed subset, the same every epoch: scoring all of fold 1 costs half an epoch on 2 cores
        rows = np.sort(np.random.default_rng(seed + 1).choice(rows, calib_max, replace=False))
    return rows


def write_curves(run_dir: Path, args, state: dict, finished: bool) -> None:
    """curves.json, rewritten after every epoch; "finished" tells a driver the run ended (its schedule or its
    patience), so one cut off mid-run is resumed rather than skipped."""
    (run_dir / "curves.json").write_text(json.dumps({"options": options_of(args), "history": state["history"],
                                                     "best_epoch": state["best"]["epoch"], "finished": finished},
                                                    indent=1, default=float))


def cmd_train(args) -> int:
    torch.set_num_threads(args.threads)
    run_dir = RUNS_DIR / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    tr, ca = data.load("train", args.cache), data.load("calib", args.cache)
    w = sample_weights(tr["label"], tr["source"], tr["side"], args.without + args.hold_out, tr["colour"], args.colours,
                       size_match=not args.no_size_match, boost=dict(args.source_boost))
    y = torch.from_numpy((tr["label"] == "stylegan").astype(np.float32))
    calib_rows = calibration_rows(ca, args.hold_out, args.calib_max, args.seed)
    used = {str(k): int(v) for k, v in zip(*np.unique(tr["source"][w > 0], return_counts=True))}
    log(f"train copies {len(w)} ({int((w > 0).sum())} drawn from), calibration copies {len(calib_rows)}; "
        f"train copies by source: {used}")
    model = V3Detector(args.view)
    params = model.trainable()
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = args.per_epoch // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps_per_epoch * args.epochs,
                                                pct_start=0.05, anneal_strategy="cos")
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    state = {"epoch": -1, "history": [], "best": None}
    last = run_dir / "last.pt"
    if last.is_file():
        ck = torch.load(last, weights_only=False)
        if ck["options"] != options_of(args):
            raise SystemExit(f"error: {last} was trained with other options {ck['options']}; use another --run")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        state = {k: ck[k] for k in ("epoch", "history", "best")}
        log(f"resumed {last} after epoch {state['epoch']}")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    t0 = time.time() - (state["history"][-1]["seconds"] if state["history"] else 0)
    for epoch in range(state["epoch"] + 1, args.epochs):
        if state["best"] is not None and epoch - state["best"]["epoch"] > PATIENCE:
            log(f"no better epoch in {PATIENCE}: stopping")
            break
        model.train()
        losses = []
        for step in range(steps_per_epoch):
            idx = rng.choice(len(w), size=args.batch, p=w)
            loss = nn.functional.binary_cross_entropy_with_logits(model(*batch_inputs(tr, idx)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if (step + 1) % 20 == 0:
                log(f"epoch {epoch} step {step + 1}/{steps_per_epoch} loss {np.mean(losses[-20:]):.4f} ({time.time() - t0:.0f} s)")
        metrics = calib_metrics(logits_of(model, ca, calib_rows), ca, calib_rows)
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": sched.get_last_lr()[0],
                 "seconds": round(time.time() - t0), **metrics}
        state["history"].append(entry)
        log("calibration fold: " + json.dumps({k: v for k, v in entry.items() if k != "by_size_bin"}, default=float))
        # the data cache can grow between invocations (generation still running): each epoch records what it drew
        # from, before the checkpoints are saved, so a resumed run's curves keep it
        entry["train_copies_by_source"] = used
        key = [entry[k] for k in CRITERION]
        if state["best"] is None or key > state["best"]["key"]:
            state["best"] = {"epoch": epoch, "key": key}
            torch.save({"model": model.state_dict(), "view": args.view, "epoch": epoch, "entry": entry,
                        "options": options_of(args)}, run_dir / "best.pt")
        state["epoch"] = epoch
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
              "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "options": options_of(args),
              "command": "training/train_backbone_v3.py " + shlex.join(sys.argv[1:]), **state}
        torch.save(ck, str(last) + ".part")
        Path(str(last) + ".part").replace(last)
        write_curves(run_dir, args, state, finished=False)
    if state["best"] is not None:
        write_curves(run_dir, args, state, finished=True)
    log(f"done: best epoch {state['best']['epoch'] if state['best'] else None}, {run_dir / 'best.pt'}")
    return 0


def cmd_soup(args) -> int:
    """One network whose weights are the mean of several runs' best checkpoints (a "model soup": fine-tuned from
    the same pretrained start, their weights average into one network as cheap to run as each), scored on the
    first run's calibration copies like an epoch, written as scratch/bb3/<run>/best.pt for export_backbone_v3."""
    torch.set_num_threads(args.threads)
    cks = [torch.load(RUNS_DIR / r / "best.pt", map_location="cpu", weights_only=False) for r in args.of]
    if len({ck["view"] for ck in cks}) != 1:
        raise SystemExit("error: the runs read different views")
    state = {k: torch.stack([ck["model"][k].float() for ck in cks]).mean(0).to(v.dtype) if v.is_floating_point() else v
             for k, v in cks[0]["model"].items()}
    model = V3Detector(cks[0]["view"], pretrained=False)
    model.load_state_dict(state)
    model.eval()
    first = cks[0]["options"]
    options = {**first, "soup_of": {r: ck["options"] for r, ck in zip(args.of, cks)}}
    ca = data.load("calib", first.get("cache", "mixed"))
    rows = calibration_rows(ca, first["hold_out"], first["calib_max"], first["seed"])
    entry = {"epoch": [ck["epoch"] for ck in cks], **calib_metrics(logits_of(model, ca, rows), ca, rows)}
    log("calibration fold: " + json.dumps({k: v for k, v in entry.items() if k != "by_size_bin"}, default=float))
    run_dir = RUNS_DIR / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "view": cks[0]["view"], "epoch": entry["epoch"], "entry": entry, "options": options},
               run_dir / "best.pt")
    (run_dir / "curves.json").write_text(json.dumps({"options": options, "history": [], "soup_entry": entry,
                                                     "best_epoch": entry["epoch"]}, indent=1, default=float))
    log(f"wrote {run_dir / 'best.pt'}: the mean of {', '.join(args.of)}")
    return 0


def options_of(args) -> dict:
    options = {k: getattr(args, k) for k in ("view", "without", "hold_out", "epochs", "per_epoch", "batch", "lr", "wd",
                                             "seed", "calib_max")}
    # absent from the runs made before these options, so their checkpoints still resume
    if args.colours is not None:
        options["colours"] = args.colours
    if args.cache != "mixed":
        options["cache"] = args.cache
    if args.no_size_match:
        options["no_size_match"] = True
    if args.source_boost:
        options["source_boost"] = dict(args.source_boost)
    return options


def cmd_curves(args) -> int:
    c = json.loads((RUNS_DIR / args.run / "curves.json").read_text())
    print(f"run {args.run}: {c['options']}; best epoch {c['best_epoch']}")
    print("epoch  loss    AUC     TPR@1%  default  AUCvsFFHQ AUCvsAligned msgTPR  grey/colour TPR@1%   s")
    for h in c["history"]:
        f = lambda v: "   -  " if v is None else f"{v:.4f}"   # noqa: E731
        print(f"{h['epoch']:5d}  {h['train_loss']:.4f}  {f(h['auc'])}  {f(h['tpr_at_1pct_real_fpr'])}  {f(h['tpr_default'])}"
              f"   {f(h['auc_vs_ffhq_original'])}    {f(h['auc_vs_aligned_copies'])}     {f(h['mobilestylegan_tpr_at_1pct'])}"
              f"  {f(h['greyscale_tpr_at_1pct'])}/{f(h['colour_tpr_at_1pct'])}  {h['seconds']}")
    return 0


def source_factor(text: str) -> tuple[str, float]:
    """SOURCE=FACTOR (a --source-boost item) as (source, factor)."""
    name, sep, factor = text.partition("=")
    if not sep or not name or float(factor) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not SOURCE=FACTOR with a positive factor")
    return name, float(factor)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--run", required=True, help="name: checkpoints and curves go to scratch/bb3/<run>/")
    t.add_argument("--view", choices=VIEWS, default="both")
    t.add_argument("--without", nargs="*", default=[],
                   help="source name patterns (fnmatch) left out of training only, e.g. 'aligned_*' (ablations: the "
                        "calibration fold stays the same, so runs compare)")
    t.add_argument("--hold-out", nargs="*", default=[],
                   help="sources left out of training and calibration (leave-one-source-out)")
    t.add_argument("--colours", nargs="+", default=None, choices=COLOUR_CHANGES,
                   help="train only on copies with these colour changes (training/colour_augment.py; 'none' is the "
                        "unchanged copy); default: all. The calibration fold keeps every copy")
    t.add_argument("--cache", choices=data.CACHES, default="mixed",
                   help="which cached copies (training/backbone3_data.py CACHES): plain is the v2 recipe's copies")
    t.add_argument("--no-size-match", action="store_true",
                   help="draw without size bins (the v2 recipe's draw), to measure what the size matching costs")
    t.add_argument("--source-boost", nargs="*", default=[], type=source_factor, metavar="SOURCE=FACTOR",
                   help="multiply these sources' sqrt(n) drawing weight within their cell")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--per-epoch", type=int, default=4096, help="copies drawn per epoch (weighted, with replacement)")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--wd", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--calib-max", type=int, default=0,
                   help="score at most this many calibration copies per epoch (a fixed random subset; 0: all)")
    c = sub.add_parser("curves")
    c.add_argument("--run", required=True)
    s = sub.add_parser("soup", help="average the weights of runs trained from the same start into one network")
    s.add_argument("--run", required=True, help="name of the averaged network's run directory")
    s.add_argument("--of", nargs="+", required=True, help="the runs whose best checkpoints are averaged")
    s.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    return {"train": cmd_train, "curves": cmd_curves, "soup": cmd_soup}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
