"""facecheck.score_image as a library call: what it accepts, what it refuses, and that it keeps its
models loaded between calls and across threads."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest

import facecheck
from facecheck import runtime

from conftest import SAMPLES


@pytest.fixture
def fresh_models(tmp_path, monkeypatch):
    """The shipped weights under a new folder name: score_image's per-process cache has not seen it,
    so the next call loads the models; counts every ONNX session created from then on."""
    link = tmp_path / "weights"
    link.symlink_to(runtime.weights_dir(), target_is_directory=True)
    monkeypatch.setenv("FACECHECK_WEIGHTS", str(link))
    created = []
    real = runtime.ort.InferenceSession

    def counting(path, *args, **kwargs):
        created.append(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(runtime.ort, "InferenceSession", counting)
    return created


def test_score_image_loads_the_models_once_per_process(fresh_models, photo):
    first = facecheck.score_image(photo, device="cpu")
    loaded = len(fresh_models)
    assert loaded >= 4   # face detector, landmarks, backbone, fusion (and the spectral detector it uses)
    second = facecheck.score_image(photo, device="cpu", mode="strict")   # the mode does not reload models
    third = facecheck.score_image(SAMPLES / "rocket.jpg", device="cpu")
    assert len(fresh_models) == loaded
    assert first.gan_score == second.gan_score and first.verdict is not None and third.verdict is not None
    assert "(strict mode)" in second.reasons[0] and "(default mode)" in first.reasons[0]


def test_concurrent_calls_from_threads_give_the_same_results(fresh_models, photo):
    images = [photo, SAMPLES / "rocket.jpg", SAMPLES / "coffee.jpg", np.asarray(photo)[40:260, 30:250]]
    modes = ["default", "strict", "sensitive", "default"]
    expected = [facecheck.score_image(img, device="cpu", mode=m).to_dict() for img, m in zip(images, modes)]
    loaded = len(fresh_models)
    got: dict[int, list] = {}
    errors = []
    start = threading.Barrier(4)

    def work(k: int):
        try:
            start.wait()
            got[k] = [facecheck.score_image(img, device="cpu", mode=m).to_dict()
                      for img, m in zip(images[k:] + images[:k], modes[k:] + modes[:k])]
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert got[k] == expected[k:] + expected[:k]
    assert len(fresh_models) == loaded


def test_a_cold_start_from_several_threads_loads_one_set(fresh_models, photo):
    results, start = [], threading.Barrier(3)

    def work():
        start.wait()
        results.append(facecheck.score_image(photo, device="cpu").to_dict())
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and results[0] == results[1] == results[2]
    per_file = {}
    for path in fresh_models:
        per_file[path] = per_file.get(path, 0) + 1
    assert set(per_file.values()) == {1}, per_file


def test_file_objects_are_read(photo):
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    data = buffer.getvalue()
    from_stream = facecheck.score_image(io.BytesIO(data), device="cpu")
    from_bytes = facecheck.score_image(data, device="cpu")
    assert from_stream.error is None and from_stream.to_dict() == from_bytes.to_dict()
    with open(SAMPLES / "rocket.jpg", "rb") as f:
        assert facecheck.score_image(f, device="cpu").phash == facecheck.score_image(SAMPLES / "rocket.jpg").phash
    with open(SAMPLES / "rocket.jpg", "r", encoding="latin-1") as f, pytest.raises(TypeError, match="binary mode"):
        facecheck.score_image(f)
    bad = facecheck.score_image(io.BytesIO(b"<html>gone</html>"), device="cpu")
    assert bad.verdict == "error" and bad.error.startswith("not an image")


def test_16_bit_and_float_arrays_are_converted_by_a_stated_rule(photo):
    rgb = np.asarray(photo)
    reference = facecheck.score_image(rgb, device="cpu")
    as_16 = facecheck.score_image(rgb.astype(np.uint16) * 257, device="cpu")   # 0-255 -> 0-65535
    as_float = facecheck.score_image(rgb.astype(np.float64) / 255.0, device="cpu")
    as_int = facecheck.score_image(rgb.astype(np.int64), device="cpu")
    for other in (as_16, as_float, as_int):
        assert other.error is None and other.phash == reference.phash and other.gan_score == reference.gan_score


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 0, 3), np.uint8), "image has no pixels"),
    (np.zeros((0, 0), np.uint8), "image has no pixels"),
    (np.zeros((0, 5, 3), np.float32), "image has no pixels"),
    (np.full((8, 8, 3), 200.0, np.float32), "float images must lie in [0, 1]"),
    (np.full((8, 8, 3), np.nan, np.float32), "float images must lie in [0, 1]"),
    (np.full((8, 8), 300, np.int32), "must hold 0-255"),
    (np.zeros((8, 8, 3), bool), "numpy images must be"),
    (np.zeros((8, 8, 2), np.uint8), "expected HxW, HxWx3"),
])
def test_arrays_that_cannot_be_read_are_load_errors_with_a_clear_message(array, message):
    result = facecheck.score_image(array, device="cpu")
    assert result.verdict == "error" and message in result.error and "unexpected" not in result.error, result.error


def test_max_pixels_applies_to_arrays_and_pil_images(photo):
    for source in (np.asarray(photo), photo):
        result = facecheck.score_image(source, device="cpu", max_pixels=300 * 299)
        assert result.verdict == "error" and "over the 89,700-pixel limit" in result.error, result.error
        assert facecheck.score_image(source, device="cpu", max_pixels=300 * 300).error is None


@pytest.mark.parametrize("source", [42, [[0, 0, 0]], None, 3.5, {"path": "x.jpg"}])
def test_a_wrong_type_raises_type_error_at_the_call(source):
    with pytest.raises(TypeError, match="cannot load an image from"):
        facecheck.score_image(source)
