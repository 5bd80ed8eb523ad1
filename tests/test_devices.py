"""Device choice: CPU always works; CUDA is used when present and refused clearly when absent.
CI has no GPU: the CUDA comparison skips there."""
import pytest
from typer.testing import CliRunner

from facecheck.api import score_image
from facecheck.cli import app
from facecheck.runtime import Runtime, cuda_available, providers_for

from conftest import SAMPLES


def test_cpu_runtime_runs_on_the_cpu_provider():
    runtime = Runtime("cpu")
    assert runtime.device == "cpu"
    assert runtime.session("yunet.onnx").get_providers() == ["CPUExecutionProvider"]


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device must be one of"):
        providers_for("tpu")
    run = CliRunner().invoke(app, ["check", str(SAMPLES / "account_a.png"), "--device", "tpu"])
    assert run.exit_code == 2 and "device must be one of" in run.output


@pytest.mark.skipif(cuda_available(), reason="a CUDA provider is present")
def test_cuda_without_a_gpu_build_fails_with_a_clear_message():
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        Runtime("cuda")
    run = CliRunner().invoke(app, ["check", str(SAMPLES / "account_a.png"), "--device", "cuda"])
    assert run.exit_code == 2 and "cuda" in run.output


@pytest.mark.skipif(not cuda_available(), reason="no CUDA provider in this onnxruntime (CI has no GPU)")
def test_cuda_scores_match_the_cpu():
    cpu = score_image(SAMPLES / "account_a.png", device="cpu", workers=0)
    gpu = score_image(SAMPLES / "account_a.png", device="cuda", workers=0)
    assert Runtime("cuda").session("yunet.onnx").get_providers()[0] == "CUDAExecutionProvider"
    assert gpu.verdict == cpu.verdict
    assert gpu.gan_score == pytest.approx(cpu.gan_score, abs=1e-3)
    assert gpu.eyes == pytest.approx(cpu.eyes, abs=0.5)
