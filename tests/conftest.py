import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from facecheck.evaluation.dataset import data_root


REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "avatars"
# Two earlier shipped fusions, so that both ways of running the cascade stay tested whichever one ships:
# variant (c), geometry + spectral + backbone, fitted on the v2 backbone's scores (shipped until 2026-12-06), and
# variant (b), geometry + backbone, which gives the spectral detector no weight (the twelfth round's, 2026-12-06)
FUSION_WITH_SPECTRAL = REPO / "tests" / "data" / "fusion_with_spectral.onnx"
FUSION_WITHOUT_SPECTRAL = REPO / "tests" / "data" / "fusion_without_spectral.onnx"
# The tests import the installed facecheck (CI tests the built wheel); the checkout is appended, not
# prepended, so that only what is not installed (training/ and benchmarks/ scripts) comes from it.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photo (NASA's astronaut portrait, public domain, from samples/), 300x300 RGB."""
    with Image.open(SAMPLES / "account_a.png") as img:
        return img.convert("RGB")


@pytest.fixture(scope="session")
def shared_data():
    root = data_root()
    if root is None:
        pytest.skip("../shared/data is absent: tests on labelled face images are skipped")
    return root


def weights_with_fusion(fusion_file: Path, tmp_path_factory, monkeypatch) -> Path:
    """FACECHECK_WEIGHTS at the shipped models with `fusion_file` as fusion.onnx. Its thresholds were set for
    another backbone, so its verdicts are not the shipped ones: it is for tests of how the detectors are run,
    gated and reported, not of detection."""
    from facecheck.runtime import weights_dir
    weights = tmp_path_factory.mktemp(fusion_file.stem)
    for f in weights_dir().iterdir():
        if f.name != "fusion.onnx":
            (weights / f.name).symlink_to(f.resolve())
    shutil.copy(fusion_file, weights / "fusion.onnx")
    monkeypatch.setenv("FACECHECK_WEIGHTS", str(weights))
    return weights


@pytest.fixture
def fusion_with_spectral(tmp_path_factory, monkeypatch):
    """The shipped models with a fusion that uses the spectral detector (FUSION_WITH_SPECTRAL)."""
    return weights_with_fusion(FUSION_WITH_SPECTRAL, tmp_path_factory, monkeypatch)


@pytest.fixture
def fusion_without_spectral(tmp_path_factory, monkeypatch):
    """The shipped models with a fusion that gives the spectral detector no weight (FUSION_WITHOUT_SPECTRAL)."""
    return weights_with_fusion(FUSION_WITHOUT_SPECTRAL, tmp_path_factory, monkeypatch)


@pytest.fixture(params=["shipped fusion", "fusion with spectral", "fusion without spectral"])
def each_fusion(request):
    """Runs a test under the shipped fusion and under one fusion with and one without the spectral detector."""
    if request.param != "shipped fusion":
        request.getfixturevalue(request.param.replace(" ", "_"))
    return request.param
