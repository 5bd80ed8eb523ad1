"""The cascade (facecheck.cascade): FaceMesh and the spectral detector are skipped only where they cannot
change the verdict at any mode, and `depth` "full" runs them on every file."""
import json
import random
import shutil

import numpy as np
import pytest
from PIL import Image

from facecheck.cascade import face_models_can_matter, spectral_can_matter
from facecheck.pipeline.analyze import Analyzer
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
from facecheck.verdict import MODES, skipped_reason

from conftest import SAMPLES


class StubFusion:
    thresholds = {"strict": 0.99, "default": 0.9, "sensitive": 0.5}

    def __init__(self, reach):
        self.reach = reach

    def spectral_reach(self, colourless):
        return self.reach[colourless] if self.reach else None


def test_the_gate_adds_the_spectral_reach_to_the_logit():
    fusion = StubFusion({False: 2.0, True: 0.5})
    # sensitive threshold 0.5 is logit 0: a score without the spectral term at logit -1.9 can still get there
    # with a reach of 2, not with 0.5; at logit -2.1 not even with 2
    below = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert spectral_can_matter(fusion, below(-1.9), colourless=False)
    assert not spectral_can_matter(fusion, below(-1.9), colourless=True)
    assert not spectral_can_matter(fusion, below(-2.1), colourless=False)
    assert spectral_can_matter(fusion, 0.99, colourless=True)
    # a fusion that did not record its reach is never gated
    assert spectral_can_matter(StubFusion(None), 1e-9, colourless=False)


def images_for_the_gate(shared_data=None) -> list[np.ndarray]:
    """The bundled avatars, and where ../shared/data is present a few images of each label in an order
    drawn here (no assumption on which come first or how large they are)."""
    images = []
    for path in sorted(SAMPLES.iterdir()):
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        except OSError:
            continue
    if shared_data is not None:
        from facecheck.evaluation.dataset import read_manifest
        samples = read_manifest()
        random.Random(7).shuffle(samples)
        for label in ("stylegan", "real_ffhq", "real_natural", "other_gen"):
            for s in [s for s in samples if s.label == label][:6]:
                with Image.open(s.path) as im:
                    images.append(np.asarray(im.convert("RGB")))
    # and a black-and-white copy of each, which the fusion calibrates apart
    return images + [np.repeat(np.asarray(Image.fromarray(im).convert("L"))[:, :, None], 3, axis=2) for im in images]


def compare_depths(images):
    full = Analyzer(Settings(device="cpu", depth="full")).signals(images)
    cascade = Analyzer(Settings(device="cpu")).signals(images)
    fusion = Analyzer(Settings(device="cpu")).models()[3]()
    lowest = min(fusion.thresholds.values())
    for f, c in zip(full, cascade):
        # full depth runs every detector the fusion uses, and only those
        assert f.depth == "full" and (f.spectral_score is not None) == ("spectral" in fusion.uses)
        if c.depth == "full":
            assert c.spectral_score == pytest.approx(f.spectral_score, abs=1e-6)
            assert c.gan_score == pytest.approx(f.gan_score, abs=1e-6)
        else:
            assert c.depth in ("cheap", "eyes") and c.spectral_score is None
            # what the skipped models would have said could not have flagged it at any mode
            assert f.gan_score < lowest and c.gan_score < lowest
        if c.depth == "eyes":   # FaceMesh ran: the same eyes
            assert c.geometry == f.geometry
        for mode in MODES:
            assert (f.gan_score >= fusion.thresholds[mode]) == (c.gan_score >= fusion.thresholds[mode])
    return [c.depth for c in cascade]


def test_the_cascade_gives_every_verdict_of_the_full_pipeline(each_fusion):
    depths = compare_depths(images_for_the_gate())
    assert "full" not in depths or len(set(depths)) > 1   # the photos of coffee and a rocket need no costly model
    assert set(depths) - {"full"}


def test_the_cascade_on_labelled_faces(shared_data, each_fusion):
    depths = compare_depths(images_for_the_gate(shared_data))
    assert "full" in depths and set(depths) - {"full"}


def test_the_face_bound_covers_every_place_facemesh_could_put_the_eyes():
    """face_models_can_matter against brute force: the fusion's score over a grid of geometries (and no
    face at all) and both ends of the spectral range never reaches the lowest threshold where the bound
    says it cannot."""
    from facecheck.geometry import EyeTemplate
    from facecheck.verdict import SPECTRAL_CLIP, fusion_features
    fusion = Analyzer(Settings(device="cpu")).models()[3]()
    if fusion.coefficients is None:
        pytest.skip("the shipped fusion does not record its weights")
    template = EyeTemplate.load()
    lowest = min(fusion.thresholds.values())
    spectral_ends = [1 / (1 + np.exp(SPECTRAL_CLIP)), 1 / (1 + np.exp(-SPECTRAL_CLIP))]
    rng = np.random.default_rng(3)
    checked = 0
    for backbone in (0.01, 0.2, 0.5, 0.8, 0.95):
        for colourless in (False, True):
            box_w, box_h = rng.uniform(0.1, 0.9, 2)
            geometries = [None] + [{"template_z2": float(z2), "cut_by_border": float(cut), "template_distance": 0.0,
                                    "eye_mid_dx": float(dx), "eye_mid_dy": float(dy), "scale_error": float(se),
                                    "roll_deg": float(roll), "box_w": box_w, "box_h": box_h}
                                   for z2, cut, dx, dy, se, roll in zip(np.exp(rng.uniform(0, 9.5, 300)) - 1,
                                                                       rng.integers(0, 2, 300), rng.normal(0, 0.05, 300),
                                                                       rng.normal(0, 0.05, 300), rng.normal(0, 0.2, 300),
                                                                       rng.normal(0, 10, 300))]
            x = np.stack([fusion_features(s, backbone, g, template, colourless) for g in geometries for s in spectral_ends])
            highest = float(fusion.score(x).max())
            if not face_models_can_matter(fusion, backbone, colourless, box_w, box_h):
                assert highest < lowest
                checked += 1
    assert checked   # low backbone scores are gated


def test_rows_say_their_depth_and_a_rerun_at_full_depth_runs_the_skipped_detector(tmp_path, each_fusion):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("account_a.png", "coffee.jpg", "rocket.jpg"):
        shutil.copy(SAMPLES / name, folder / name)

    def rows(out):
        return {r["path"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}

    run_scan(walk(folder), tmp_path / "out", Settings(workers=0, device="cpu"), folder=folder)
    first = rows(tmp_path / "out")
    cheap = [p for p, r in first.items() if r["depth"] in ("cheap", "eyes")]
    assert cheap and all(first[p]["spectral_score"] is None for p in cheap)
    uses = Analyzer(Settings(device="cpu")).models()[3]().uses
    assert all(skipped_reason(first[p]["depth"], uses) in first[p]["reasons"] for p in cheap)
    rerun = run_scan(walk(folder), tmp_path / "out", Settings(workers=0, device="cpu", depth="full"), folder=folder)
    run_scan(walk(folder), tmp_path / "fresh", Settings(workers=0, device="cpu", depth="full"), folder=folder)
    assert rerun.scanned == 3
    assert rows(tmp_path / "out") == rows(tmp_path / "fresh")
    assert all(r["depth"] == "full" and (r["spectral_score"] is not None) == ("spectral" in uses)
               for r in rows(tmp_path / "out").values())


def test_an_unknown_depth_is_refused():
    with pytest.raises(ValueError, match="depth"):
        Analyzer(Settings(device="cpu", depth="shallow"))


def test_the_shipped_fusion_records_the_spectral_reach():
    """Without it the cascade never skips: a fusion rebuilt without the metadata would silently cost the
    full price."""
    fusion = Analyzer(Settings(device="cpu")).models()[3]()
    for colourless in (False, True):
        reach = fusion.spectral_reach(colourless)
        assert reach is not None and 0 <= reach <= 9 * 5
        assert reach > 0 or "spectral" not in fusion.uses


def test_coarse_finding_takes_the_largest_face_and_orders_its_eyes_by_position():
    from facecheck.faces import coarse_finding
    assert coarse_finding(np.zeros((0, 15), np.float32)).face is None
    small = [10, 10, 20, 20, 14, 15, 24, 15, 19, 20, 15, 25, 23, 25, 0.9]
    large = [50, 40, 100, 120, 120, 80, 80, 81, 100, 100, 85, 130, 115, 130, 0.8]   # eyes listed right first
    finding = coarse_finding(np.array([small, large], np.float32))
    assert finding.faces_found == 2
    assert finding.face.box == (50, 40, 100, 120)
    assert finding.face.eyes == ((80, 81), (120, 80))


def test_faces_near_the_template_by_yunet_keep_facemesh():
    from facecheck.cascade import NEAR_TEMPLATE_COARSE_Z2, near_template
    from facecheck.verdict import ON_TEMPLATE_Z2
    assert near_template(ON_TEMPLATE_Z2) and near_template(NEAR_TEMPLATE_COARSE_Z2)
    assert not near_template(NEAR_TEMPLATE_COARSE_Z2 + 1)
