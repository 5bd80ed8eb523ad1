import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from facecheck.evaluation.dataset import data_root


REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "avatars"
# The fusion shipped until 2026-12-06 (variant (c): geometry + spectral + backbone, fitted on the v2 backbone's
# scores), kept for the code paths that run the spectral detector: the shipped fusion may leave it out.
FUSION_WITH_SPECTRAL = REPO / "tests" / "data" / "fusion_with_spectral.onnx"
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


@pytest.fixture
def fusion_with_spectral(tmp_path_factory, monkeypatch):
    """FACECHECK_WEIGHTS at the shipped models with a fusion that uses the spectral detector
    (FUSION_WITH_SPECTRAL). Its thresholds were set for another backbone, so its verdicts are not the shipped
    ones: it is for tests of how the spectral detector is run, gated and reported, not of detection."""
    from facecheck.runtime import weights_dir
    weights = tmp_path_factory.mktemp("weights_with_spectral")
    for f in weights_dir().iterdir():
        if f.name != "fusion.onnx":
            (weights / f.name).symlink_to(f.resolve())
    shutil.copy(FUSION_WITH_SPECTRAL, weights / "fusion.onnx")
    monkeypatch.setenv("FACECHECK_WEIGHTS", str(weights))
    return weights


@pytest.fixture(params=["shipped fusion", "fusion with spectral"])
def each_fusion(request):
    """Runs a test under the shipped fusion and under one that uses the spectral detector."""
    if request.param == "fusion with spectral":
        request.getfixturevalue("fusion_with_spectral")
    return request.param
