"""A two-member backbone: one ONNX graph that runs two backbone files on the same input and averages their
Platt-calibrated logits (the sixth round of issue 20, training/reports/backbone_v3_recipe_ship_rules.txt).

    # the graph, with no thresholds yet (members: ONNX files with inputs `image` only and outputs score, logit)
    PYTHONPATH=. .venv/bin/python training/backbone_pair.py build --first <v2 backbone.onnx> \\
        --second scratch/bb3/mixed3_soup/backbone.onnx --out scratch/pair/weights/backbone.onnx
    # its thresholds, from the fold-1 signals train_fusion.py collected with it (colour copies, both halves)
    PYTHONPATH=. .venv/bin/python training/backbone_pair.py thresholds --model scratch/pair/weights/backbone.onnx \\
        --rows scratch/fusion_rows_<digests>_colour_300.jsonl

Each member's `logit` output is its raw logit; its metadata `platt` = "a,b" maps it to the calibrated logit
a * logit + b, whose sigmoid is the member's score. The pair's `logit` output is the mean of the two calibrated
logits (so its own `platt` is "1,0") and its `score` that mean's sigmoid: facecheck.backbone reads `score` only, so
the pair drops in for weights/backbone.onnx. Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facecheck.evaluation import evaluate as evaluation  # noqa: E402

MEMBERS = ("first", "second")


def platt_of(model) -> tuple[float, float]:
    meta = {p.key: p.value for p in model.metadata_props}
    a, b = (float(v) for v in meta["platt"].split(","))
    return a, b


def build(first: Path, second: Path, out: Path) -> None:
    """The pair graph: `image` -> both members -> mean calibrated logit -> (score, logit)."""
    import onnx
    from onnx import compose, helper, numpy_helper
    members = {path: onnx.load(str(path)) for path in (first, second)}
    nodes, inits, calibrated, opsets = [], [], [], {}
    for name, (path, member) in zip(MEMBERS, members.items()):
        if [i.name for i in member.graph.input] != ["image"]:
            raise SystemExit(f"{path}: a member must read the whole view only (input `image`)")
        a, b = platt_of(member)
        member = compose.add_prefix(member, f"{name}_")
        nodes.append(helper.make_node("Identity", ["image"], [f"{name}_image"]))
        nodes += member.graph.node
        inits += list(member.graph.initializer)
        inits += [numpy_helper.from_array(np.array(a, np.float32), f"{name}_platt_a"),
                  numpy_helper.from_array(np.array(b, np.float32), f"{name}_platt_b")]
        nodes += [helper.make_node("Mul", [f"{name}_logit", f"{name}_platt_a"], [f"{name}_scaled"]),
                  helper.make_node("Add", [f"{name}_scaled", f"{name}_platt_b"], [f"{name}_calibrated"])]
        calibrated.append(f"{name}_calibrated")
        opsets |= {o.domain: max(o.version, opsets.get(o.domain, 0)) for o in member.opset_import}
    nodes += [helper.make_node("Mean", calibrated, ["logit"]), helper.make_node("Sigmoid", ["logit"], ["score"])]
    side = members[first].graph.input[0].type.tensor_type.shape
    graph = helper.make_graph(
        nodes, "facecheck_backbone_pair",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [d.dim_param or d.dim_value for d in side.dim])],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["n"]) for n in ("score", "logit")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="facecheck")
    model.ir_version = 8
    described = "; ".join(f"{path} (platt {platt_of(member)})" for path, member in members.items())
    for key, value in {"platt": "1,0", "input_side": str(side.dim[1].dim_value), "view": "whole",
                       "members": described}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))


def member_parity(pair: Path, first: Path, second: Path, n: int = 16) -> float:
    """Max |pair score - sigmoid(mean of the members' calibrated logits)| on random inputs, by ONNX Runtime."""
    import onnx
    import onnxruntime as ort
    x = np.random.default_rng(0).uniform(0, 255, (n, 128, 128, 3)).astype(np.float32)
    z = []
    for path in (first, second):
        a, b = platt_of(onnx.load(str(path)))
        raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logit"], {"image": x})[0]
        z.append(a * raw.reshape(-1) + b)
    expected = 1 / (1 + np.exp(-np.mean(z, axis=0)))
    got = ort.InferenceSession(str(pair), providers=["CPUExecutionProvider"]).run(["score"], {"image": x})[0]
    return float(np.abs(got.reshape(-1) - expected).max())


def thresholds(rows: list[evaluation.Row]) -> dict[str, float]:
    """The operating points export_backbone_v3 gives a backbone, read off fold-1 colour copies (both halves)."""
    from training import train_backbone as v2
    from training.train_fusion import is_grey_condition
    ok = [r for r in rows if r.error is None and r.label in v2.TRAIN_LABELS and not is_grey_condition(r.condition)]
    sc = np.array([r.backbone_score for r in ok], np.float64)
    lab = np.array([r.label for r in ok])
    return {"default": v2.operating_point(sc, lab), "sensitive": v2.operating_point(sc, lab, *v2.SENSITIVE),
            "natural_0.1pct": v2.threshold_at_fpr(sc[lab == "real_natural"], v2.FPR_NATURAL),
            "ffhq_1pct": v2.threshold_at_fpr(sc[lab == "real_ffhq"], v2.FPR_FFHQ)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--first", type=Path, required=True)
    b.add_argument("--second", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("thresholds")
    t.add_argument("--model", type=Path, required=True)
    t.add_argument("--rows", type=Path, required=True, help="train_fusion.py's cached fold-1 rows of this model")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.first, args.second, args.out)
        print(f"wrote {args.out}; max |score - members' mean| {member_parity(args.out, args.first, args.second):.2e}")
    else:
        from training import backbone_model as bm   # torch, as train_backbone: only the thresholds step needs it
        found = thresholds(evaluation.read_rows(args.rows))
        bm.add_metadata(args.model, {f"threshold_{k}": f"{v:.6f}" for k, v in found.items()})
        print(f"{args.model}: thresholds {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
