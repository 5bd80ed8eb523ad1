"""training/degraded_cache.py and training/card_writer.py: one way of seeding, degrading and caching copies, and one
way of writing the model cards, for every training pipeline.

The seeds and degradations must give exactly the copies the earlier per-pipeline code gave (caches and published
numbers stay reproducible), and a card's numbers must read as before. The references below are that code, as it
stood in training/spectral_data.py, training/backbone_data.py, training/backbone3_data.py, training/train_fusion.py,
training/spectral_card.py and training/backbone_card.py before they shared these modules.
Only torch-free modules are imported (the test venv has no torch).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from facecheck.evaluation.dataset import Sample, read_manifest
from facecheck.evaluation.degrade import random_platform
from facecheck.evaluation.evaluate import binomial_interval
from training import backbone_data, card_writer, spectral_data
from training.degraded_cache import ArrayCache, Degradation, copy_rng, degraded_copy, seed_of

from conftest import SAMPLES


# ---- the old code, verbatim in substance ---------------------------------------------------------------------
def old_seed(name: str, copy: int, salt: str) -> int:
    return int(hashlib.sha1(f"{salt}:{name}:{copy}".encode()).hexdigest()[:12], 16)


def old_spectral_copy(path, copy: int, salt: str = "spectral-v1") -> Image.Image:
    rng = np.random.default_rng(old_seed(path.name, copy, salt))
    max_side = 160 if rng.random() < 0.35 else 512
    with Image.open(path) as im:
        return random_platform(im.convert("RGB"), rng, max_side=max_side)


def old_backbone_copy(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = max(img.size)
    return random_platform(img, rng, min_side=min(96, side), max_side=side, max_crop=0.12)


def old_fusion_copy(im: Image.Image, k: int) -> Image.Image:
    seed = int(hashlib.md5(im.tobytes()[:65536]).hexdigest()[:8], 16) + 7919 * k
    return random_platform(im, np.random.default_rng(seed), max_crop=0.15)


def old_backbone_card_pct(r):
    if not r or r.get("n", 0) == 0:
        return "n/a"
    lo, hi = r["interval"]
    return f"{100 * r['share']:.1f}% ({r['k']}/{r['n']}; {100 * lo:.1f}-{100 * hi:.1f})"


def old_train_backbone_rate(scores, t):
    k, n = int((scores >= t).sum()), len(scores)
    return {"k": k, "n": n, "share": k / n if n else None, "interval": binomial_interval(k, n) if n else None}


def old_fusion_flagged(scores, t):
    scores = np.asarray(scores)
    n = len(scores)
    if n == 0:
        return "n/a"
    k = int(np.sum(scores >= t))
    lo, hi = binomial_interval(k, n)
    return f"{100 * k / n:.1f}% ({k}/{n}; {100 * lo:.1f}-{100 * hi:.1f})"


def old_spectral_card_pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------------------------------------------
SAMPLE_FILES = ["account_a.png", "account_c.jpg", "coffee.jpg", "rocket.jpg"]


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_seed_of_is_the_old_formula():
    for name in ("00708caa78ba.jpg", "a|ffhq", "x.png"):
        for copy in range(4):
            for salt in ("spectral-v1", "backbone-v1", "backbone-v3train", "backbone-v3calib"):
                assert seed_of(name, copy, salt) == old_seed(name, copy, salt)
    assert seed_of("a.jpg", 0, "s") != seed_of("a.jpg", 1, "s") != seed_of("b.jpg", 1, "s")


@pytest.mark.parametrize("file", SAMPLE_FILES)
def test_spectral_copies_are_the_old_ones(file):
    sample = Sample(SAMPLES / file, "real_natural", "samples", "")
    for copy in range(6):      # 0.35 of copies small: six copies see both branches on these files
        assert same(spectral_data.degraded_copy(sample, copy), old_spectral_copy(sample.path, copy))
    assert same(spectral_data.degraded_copy(sample, 2, salt="other"), old_spectral_copy(sample.path, 2, "other"))


@pytest.mark.parametrize("file", SAMPLE_FILES)
def test_backbone_copies_are_the_old_ones(file, photo):
    with Image.open(SAMPLES / file) as im:
        img = im.convert("RGB")
    small = photo.resize((80, 64))      # under the 96 px floor: the image's own size bounds the copy
    for copy in range(4):
        new = degraded_copy(img, file, copy, backbone_data.SALT, backbone_data.DEGRADATION)
        assert same(new, old_backbone_copy(img, np.random.default_rng(old_seed(file, copy, "backbone-v1"))))
        # backbone3_data: its own seed name and salt, the same degradation after its colour and template steps
        rng_new, rng_old = copy_rng(f"{file}|src", copy, "backbone-v3train"), np.random.default_rng(
            old_seed(f"{file}|src", copy, "backbone-v3train"))
        assert same(backbone_data.DEGRADATION.apply(small, rng_new), old_backbone_copy(small, rng_old))
        assert rng_new.random() == rng_old.random()      # the generator is left in the same state


def test_fusion_and_default_degradations_are_the_old_ones(photo):
    from training.train_fusion import RANDOM_DEGRADATION
    for k in range(3):
        seed = int(hashlib.md5(photo.tobytes()[:65536]).hexdigest()[:8], 16) + 7919 * k
        assert same(RANDOM_DEGRADATION.apply(photo, np.random.default_rng(seed)), old_fusion_copy(photo, k))
        assert same(Degradation().apply(photo, np.random.default_rng(k)), random_platform(photo, np.random.default_rng(k)))


def test_copies_of_labelled_faces_are_the_old_ones(shared_data):
    samples = read_manifest()
    picked = samples[:: max(1, len(samples) // 6)][:6]
    for s in picked:
        with Image.open(s.path) as im:
            img = im.convert("RGB")
        for copy in range(2):
            assert same(spectral_data.degraded_copy(s, copy), old_spectral_copy(s.path, copy))
            new = degraded_copy(img, s.path.name, copy, backbone_data.SALT, backbone_data.DEGRADATION)
            assert same(new, old_backbone_copy(img, np.random.default_rng(old_seed(s.path.name, copy, "backbone-v1"))))


@pytest.mark.parametrize("suffix", [".npz", ""])
def test_array_cache_keeps_entries_and_shows_only_complete_ones(tmp_path, suffix):
    cache = ArrayCache(tmp_path / "cache", suffix=suffix)
    assert not cache.has("train") and cache.names() == []
    entry = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "label": np.array(["stylegan", "real_ffhq", "x"])}
    cache.save("train", entry)
    cache.save("calib", {"x": np.zeros((1, 4), np.uint8), "label": np.array(["a"])})
    assert cache.has("train") and cache.names() == ["calib", "train"]
    back = cache.load("train")
    assert set(back) == set(entry)
    assert all(np.array_equal(back[k], v) for k, v in entry.items())
    # an interrupted write leaves only a .part, which is no entry
    partial = tmp_path / "cache" / f"half{suffix}.part"
    partial.mkdir() if suffix == "" else partial.write_bytes(b"partial")
    assert not cache.has("half") and cache.names() == ["calib", "train"]
    cache.remove("tr*")
    assert cache.names() == ["calib"]
    with pytest.raises(FileNotFoundError):
        cache.load("train")


def test_folder_entries_fill_fields_in_place_and_memory_map_them(tmp_path):
    cache = ArrayCache(tmp_path, suffix="")
    tiles = cache.array_writer("features", "tiles", np.uint8, (5, 2, 2))
    tiles[:] = np.arange(20).reshape(5, 2, 2)
    tiles.flush()
    del tiles
    assert not cache.has("features")          # not visible until saved
    cache.save("features", {"fold": np.array([0, 1, 2, 3, 4])})
    back = cache.load("features", mmap=("tiles",))
    assert isinstance(back["tiles"], np.memmap) and not isinstance(back["fold"], np.memmap)
    assert np.array_equal(back["tiles"], np.arange(20).reshape(5, 2, 2)) and list(back["fold"]) == [0, 1, 2, 3, 4]
    cache.save("features", {"fold": np.array([9])})   # a rebuild replaces the whole entry
    assert set(cache.load("features")) == {"fold"}


def test_unknown_cache_form_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown cache form"):
        ArrayCache(tmp_path, suffix=".h5")


def test_card_numbers_read_as_the_old_card_writers_wrote_them():
    rng = np.random.default_rng(3)
    # sizes of the test fold's classes, and shares on rounding edges (49/400 = 12.25%)
    for n in (0, 1, 3, 8, 39, 98, 110, 112, 400, 477):
        for _ in range(6):
            scores, t = rng.random(n), float(rng.random())
            rate = card_writer.rate_of(scores, t)
            assert rate == old_train_backbone_rate(scores, t)
            assert card_writer.counted_rate(rate) == old_backbone_card_pct(rate)
            assert card_writer.flagged(scores, t) == old_fusion_flagged(scores, t)
            assert card_writer.flagged(list(scores), t) == old_fusion_flagged(list(scores), t)
    assert card_writer.counted_rate(None) == "n/a" == card_writer.flagged([], 0.5)
    assert card_writer.counted(2, 110) == "1.8% (2/110; 0.2-6.4)"      # as the README quotes the FFHQ-aligned FPR
    for x in (None, 0.0, 1.0, 0.1225, 49 / 400, 0.00049, 0.99951, 2 / 110):
        assert card_writer.percent(x) == old_spectral_card_pct(x)
    assert card_writer.four(None) == "n/a" and card_writer.four(0.97484) == "0.9748"


def test_tables_are_markdown_with_a_rule_under_the_header():
    assert card_writer.table(["condition", "AUC"], [["400px_q70-85", "0.9748"], ["128px", "n/a"]]) == [
        "| condition | AUC |", "|---|---|", "| 400px_q70-85 | 0.9748 |", "| 128px | n/a |"]
    assert card_writer.table(["a", "b", "c"]) == ["| a | b | c |", "|---|---|---|"]
    assert card_writer.row(["x", 3, None]) == "| x | 3 | None |"
