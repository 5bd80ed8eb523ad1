"""facecheck.pdq against the reference PDQ (the `pdqhash` package: Meta's C++ behind a binding)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from facecheck.pdq import MATCH_BITS, parse_hex, pdq

pdqhash = pytest.importorskip("pdqhash", reason="the reference PDQ (pip install pdqhash; in the test extra)")


def reference(rgb: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return np.packbits(np.asarray(bits, bool)).tobytes().hex(), int(quality)


def distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.mark.parametrize("h, w", [(4, 40), (5, 5), (64, 64), (63, 65), (150, 150), (300, 217), (1024, 768), (1500, 2000)])
def test_matches_the_reference_on_any_size(h, w):
    rng = np.random.default_rng(h * w)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.clip(np.stack([x * 255 / w, y * 255 / h, (x + y) % 97 * 2], -1) + rng.normal(0, 20, (h, w, 3)), 0, 255)
    rgb = rgb.astype(np.uint8)
    mine, (ref_hex, ref_quality) = pdq(rgb), reference(rgb)
    assert distance(str(mine.hash), ref_hex) <= 2 and abs(mine.quality - ref_quality) <= 1


def test_matches_the_reference_on_hundreds_of_face_photos(shared_data):
    from facecheck.evaluation.dataset import read_manifest
    picked = sorted(read_manifest(), key=lambda s: hashlib.sha256(s.path.name.encode()).hexdigest())[:300]
    worst = []
    for sample in picked:
        with Image.open(sample.path) as img:
            rgb = np.asarray(img.convert("RGB"))
        mine, (ref_hex, ref_quality) = pdq(rgb), reference(rgb)
        worst.append((distance(str(mine.hash), ref_hex), abs(mine.quality - ref_quality)))
    assert len(worst) == 300
    assert max(d for d, _ in worst) <= 2 and max(q for _, q in worst) <= 1


def test_hex_form_is_threatexchanges():
    h = parse_hex("f" * 32 + "0" * 32)
    assert str(h) == "f" * 32 + "0" * 32 and h - parse_hex("0" * 64) == 128
    with pytest.raises(ValueError):
        parse_hex("abc")
    assert MATCH_BITS == 31


def test_a_jpeg_the_loader_reduces_still_gets_the_full_size_pdq(tmp_path):
    """The loader decodes JPEGs over 2 x 1024 px at reduced size for the models; PDQ, compared with
    other tools' hashes, must still be that of the full image (the reduced decode moved it 2-6 bits)."""
    from facecheck.pipeline.prepare import prepare
    from facecheck.settings import Settings
    h, w = 2200, 2600
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.clip(np.stack([x * 255 / w, y * 255 / h, (x // 7 + y // 5) % 97 * 2], -1) + rng.normal(0, 20, (h, w, 3)),
                  0, 255).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    with Image.open(path) as img:
        full = np.asarray(img.convert("RGB"))
    prepared = prepare(path, "big.jpg", Settings())
    assert prepared.image.shape[0] < h   # the models still get the reduced decode
    result = prepared.result
    assert result.pdq == str(pdq(full).hash)
    ref_hex, ref_quality = reference(full)
    assert distance(result.pdq, ref_hex) <= 2 and abs(result.pdq_quality - ref_quality) <= 1
