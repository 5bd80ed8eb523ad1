"""ONNX Runtime sessions and execution-provider choice, for every model facecheck ships.

One `Runtime` owns one `InferenceSession` per model file in `weights/`, created on first use and
shared afterwards. Provider choice lives here and nowhere else: `device="auto"` takes CUDA when
onnxruntime-gpu is installed and a GPU answers, else the CPU. Models are never downloaded.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

DEVICES = ("auto", "cpu", "cuda")
# Models with an int8 twin that the CPU runs in their place (the twin's card says how close it stays;
# on CUDA the float32 model runs). Built by training/quantize_spectral.py.
# FACECHECK_FLOAT32=1 runs the float32 models on the CPU too (to compare, e.g. with `facecheck eval`).
QUANTIZED_ON_CPU = {"spectral.onnx": "spectral.int8.onnx"}
_PACKAGE = Path(__file__).resolve().parent


def weights_dir() -> Path:
    """The one place that locates the shipped models and their cards.

    An installed package (wheel, `pip install .`) holds them in facecheck/weights/, mapped there from
    the repo's top-level weights/ by pyproject.toml; a source checkout (editable install, or the repo on
    sys.path) reads weights/ beside the package. `FACECHECK_WEIGHTS` points elsewhere on purpose."""
    if os.environ.get("FACECHECK_WEIGHTS"):
        return Path(os.environ["FACECHECK_WEIGHTS"])
    packaged = _PACKAGE / "weights"
    return packaged if packaged.is_dir() else _PACKAGE.parent / "weights"


def weights_path(filename: str) -> Path:
    """Where a shipped model or card lives (see weights_dir)."""
    return weights_dir() / filename


def model_digests() -> dict[str, str]:
    """sha256 (first 16 hex digits) of each shipped model file, so a result names what produced it."""
    names = ("yunet.onnx", "facemesh.onnx", "eye_template.json", "spectral.onnx", "spectral.int8.onnx",
             "backbone.onnx", "backbone_grey.onnx", "fusion.onnx")
    digests = {}
    for n in names:
        path = weights_path(n)
        if path.is_file():
            st = path.stat()
            digests[n] = _file_digest(str(path), st.st_size, st.st_mtime_ns)
    return digests


@lru_cache(maxsize=32)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """Once per file state: a scan asks twice (its signals key, its report's settings), ~21 MB each time."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


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
    """Lazily created ONNX Runtime sessions, keyed by model file name, on one device.

    intra_op_threads: threads per ONNX run; None leaves ONNX Runtime's default (one per core). A CPU
    scan's worker processes each run their models with one thread (facecheck.pipeline.local_scheduler)."""

    spin = False   # let ORT's idle pool threads busy-wait (faster only on an otherwise idle machine)
    # How cuDNN picks each convolution's algorithm on CUDA. ONNX Runtime's default, EXHAUSTIVE, times every
    # algorithm for each new input shape; batch shapes here change from batch to batch (the cascade's subsets,
    # tiles per image, faces per batch), so that search would run again and again (benchmarks/bench_model_calls.py).
    cudnn_conv_algo_search = "HEURISTIC"

    def __init__(self, device: str = "auto", intra_op_threads: int | None = None):
        self.providers = providers_for(device)
        self.requested = device
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.intra_op_threads = intra_op_threads
        self._sessions: dict[str, ort.InferenceSession] = {}
        if self.device == "cuda" and hasattr(ort, "preload_dlls"):
            # CUDA and cuDNN installed as nvidia-* pip packages are not on the loader's path;
            # ONNX Runtime (>= 1.21) can load them from there. Harmless when they are system-wide.
            try:
                ort.preload_dlls()
            except Exception:   # noqa: BLE001 - a failed preload only means the system libraries are used
                pass

    def model_file(self, filename: str) -> str:
        """The file that runs for a model on this device: its int8 twin on the CPU, where one ships."""
        twin = QUANTIZED_ON_CPU.get(filename)
        if self.device == "cpu" and twin and weights_path(twin).is_file() and not os.environ.get("FACECHECK_FLOAT32"):
            return twin
        return filename

    def session(self, filename: str) -> ort.InferenceSession:
        if filename not in self._sessions:
            path = weights_path(self.model_file(filename))
            if not path.is_file():
                raise FileNotFoundError(f"model {path} is missing; it ships in weights/ "
                                        f"(see the model card beside it for the script that rebuilds it)")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.intra_op_threads:
                options.intra_op_num_threads = self.intra_op_threads
                options.inter_op_num_threads = 1
            if not self.spin:
                # ORT's pool threads busy-wait between operators by default: on a CPU shared with the
                # decoding processes that burns the cores they need (benchmarks/bench_scan.py).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=self._provider_options())
            if self.device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
                if self.requested == "cuda":
                    raise RuntimeError(f"device 'cuda' asked for, but ONNX Runtime could not start CUDA for "
                                       f"{filename} (missing CUDA/cuDNN libraries?)")
                self.device = "cpu"   # auto: ONNX Runtime fell back to the CPU; say so in what we report
            self._sessions[filename] = session
        return self._sessions[filename]

    @property
    def pads_batches(self) -> bool:
        """Whether models that batch a varying number of crops should pad each run to its full batch size:
        on CUDA a run whose batch shape differs from the last one costs far more than the padding
        (benchmarks/bench_model_calls.py, FaceMesh in the cascade); on the CPU padding is only wasted work."""
        return self.device == "cuda"

    def _provider_options(self) -> list:
        return [(p, {"cudnn_conv_algo_search": self.cudnn_conv_algo_search}) if p == "CUDAExecutionProvider" else p
                for p in self.providers]

    def run(self, filename: str, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self.session(filename).run(None, dict(inputs))

    def input_names(self, filename: str) -> list[str]:
        return [i.name for i in self.session(filename).get_inputs()]


def runs_on_cpu(device: str) -> bool:
    """Whether `device` ("auto", "cpu", "cuda") means the CPU on this machine."""
    return device == "cpu" or (device == "auto" and not cuda_available())
