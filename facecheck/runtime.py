"""ONNX Runtime sessions and execution-provider choice, for every model facecheck ships.

One `Runtime` owns one `InferenceSession` per model file in `weights/`, created on first use and
shared afterwards. Provider choice lives here and nowhere else: `device="auto"` takes CUDA when
onnxruntime-gpu is installed and a GPU answers, else the CPU. Models are never downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEVICES = ("auto", "cpu", "cuda")


def weights_path(filename: str) -> Path:
    """Where a shipped model lives; `FACECHECK_WEIGHTS` points elsewhere (e.g. a packaged install)."""
    base = Path(os.environ.get("FACECHECK_WEIGHTS", WEIGHTS_DIR))
    return base / filename


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def providers_for(device: str) -> list[str]:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "cuda":
        if not cuda_available():
            raise RuntimeError("device 'cuda' asked for, but this onnxruntime has no CUDA provider "
                               "(install onnxruntime-gpu on a machine with an NVIDIA GPU)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto" and cuda_available():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class Runtime:
    """Lazily created ONNX Runtime sessions, keyed by model file name, on one device."""

    def __init__(self, device: str = "auto", intra_op_threads: int | None = None):
        self.providers = providers_for(device)
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.intra_op_threads = intra_op_threads
        self._sessions: dict[str, ort.InferenceSession] = {}

    def session(self, filename: str) -> ort.InferenceSession:
        if filename not in self._sessions:
            path = weights_path(filename)
            if not path.is_file():
                raise FileNotFoundError(f"model {path} is missing; it ships in weights/ "
                                        f"(see the model card beside it for the script that rebuilds it)")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.intra_op_threads:
                options.intra_op_num_threads = self.intra_op_threads
                options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._sessions[filename] = ort.InferenceSession(str(path), options, providers=self.providers)
        return self._sessions[filename]

    def run(self, filename: str, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self.session(filename).run(None, dict(inputs))

    def input_names(self, filename: str) -> list[str]:
        return [i.name for i in self.session(filename).get_inputs()]
