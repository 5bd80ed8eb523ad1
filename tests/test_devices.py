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
    assert len(gpu.eyes) == len(cpu.eyes) == 2
    for g, c in zip(gpu.eyes, cpu.eyes):   # (x, y) of each eye
        assert g == pytest.approx(c, abs=0.5)


def test_padded_facemesh_batches_give_the_same_landmarks(monkeypatch, photo):
    """On CUDA FaceMesh's runs are padded to full batches (a new batch shape costs more there than the padding);
    the padding rows must change nothing. Checked on the CPU with the padding forced, on a batch that is not full."""
    import numpy as np
    from facecheck.faces import FaceLocator
    images = [np.asarray(photo), np.asarray(photo)[:, ::-1].copy(), np.asarray(photo.resize((200, 200)))]
    plain = FaceLocator(Runtime("cpu")).locate(images)
    monkeypatch.setattr(Runtime, "pads_batches", property(lambda self: True))
    padded = FaceLocator(Runtime("cpu")).locate(images)
    assert [f.face is not None for f in plain] == [True, True, True]
    for a, b in zip(plain, padded):
        assert np.allclose(a.face.eyes, b.face.eyes, atol=1e-3)
