"""The fused verdict: features, the shipped fusion model, operating points, `facecheck eval`."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facecheck.api import score_image
from facecheck.pipeline.analyze import Analyzer
from facecheck.settings import Settings
from facecheck.evaluation import degrade
from facecheck.cli import app
from facecheck.geometry import EyeTemplate
from facecheck.runtime import Runtime
from facecheck.verdict import (FEATURE_NAMES, MODES, FusionModel, skipped_reason, decision_reason,
                               fusion_features, reuse_reason)

from conftest import SAMPLES


TEMPLATE = EyeTemplate.load()


def geometry(z2: float, cut: float = 0.0) -> dict:
    """Geometry features of a face whose deviations from the template are spread evenly over the
    four terms and add up to z2."""
    each = (z2 / 4) ** 0.5
    return {"template_z2": z2, "cut_by_border": cut, "template_distance": each * TEMPLATE.distance_spread,
            "eye_mid_dx": each * TEMPLATE.distance_spread, "eye_mid_dy": each * TEMPLATE.distance_spread,
            "scale_error": each * TEMPLATE.scale_spread, "roll_deg": TEMPLATE.roll_deg + each * TEMPLATE.roll_spread_deg,
            "box_w": 0.45, "box_h": 0.6}


@pytest.fixture(scope="module")
def fusion():
    return FusionModel(Runtime("cpu"))


def test_features_without_a_face_carry_the_pixel_detectors_alone():
    x = fusion_features(0.9, 0.8, None, TEMPLATE)
    assert x.shape == (len(FEATURE_NAMES),)
    assert FEATURE_NAMES[:3] == ["spectral_logit", "backbone_logit", "has_face"]
    assert x[0] == pytest.approx(np.log(9), rel=1e-5) and x[1] == pytest.approx(np.log(4), rel=1e-5)
    assert not x[2:].any()
    # a detector that was not run enters as 0; a saturated one is clipped like the spectral logit
    assert fusion_features(None, 0.8, None, TEMPLATE)[0] == 0.0
    assert fusion_features(0.9, None, None, TEMPLATE)[1] == 0.0
    assert fusion_features(0.5, 1.0, None, TEMPLATE)[1] == pytest.approx(9.0)
    assert fusion_features(0.5, 0.0, None, TEMPLATE)[1] == pytest.approx(-9.0)


def test_features_with_a_face_have_a_piecewise_linear_geometry_term():
    near, far = (fusion_features(0.5, 0.5, geometry(3.0), TEMPLATE),
                 fusion_features(0.5, 0.5, geometry(5000.0), TEMPLATE))
    assert near[2] == far[2] == 1.0
    assert far[3] > near[3]
    assert (far[4:] >= near[4:]).all()
    capped = fusion_features(0.5, 0.5, geometry(1e12), TEMPLATE)
    assert capped[3] == pytest.approx(9.0) and capped[-6:-2].max() == pytest.approx(4.0)


def test_operating_points_are_ordered(fusion):
    t = fusion.thresholds
    assert set(t) == set(MODES)
    assert t["sensitive"] <= t["default"] <= t["strict"]
    assert all(0 < v < 1 for v in t.values())


def test_thresholds_features_and_detectors_used_are_in_the_model_metadata(fusion):
    meta = Runtime("cpu").session("fusion.onnx").get_modelmeta().custom_metadata_map
    assert {m: float(meta[f"threshold_{m}"]) for m in MODES} == fusion.thresholds
    assert meta["features"].split(",") == FEATURE_NAMES
    assert "backbone" in fusion.uses and fusion.uses <= {"spectral", "backbone"}
    assert set(meta["uses"].split(",")) == set(fusion.uses)
    assert 0.5 < float(meta["backbone_flag"]) < 1


def fused_weight(fusion, column: int) -> float:
    """The weight of one feature in the shipped model, read through the model itself."""
    x = np.zeros((2, len(FEATURE_NAMES)), np.float32)
    x[1, column] = 1.0
    s = fusion.score(x).astype(np.float64)
    return float(np.log(s[1] / (1 - s[1])) - np.log(s[0] / (1 - s[0])))


def test_gan_score_rises_with_the_backbone_and_falls_off_the_template(fusion):
    assert fused_weight(fusion, FEATURE_NAMES.index("backbone_logit")) > 0.1
    on_template = np.stack([fusion_features(0.5, b, geometry(3.0), TEMPLATE) for b in (0.1, 0.5, 0.9, 0.99)])
    scores = fusion.score(on_template)
    assert (np.diff(scores) > 0).all()
    natural = fusion.score(np.stack([fusion_features(0.9, 0.9, geometry(3.0), TEMPLATE),
                                    fusion_features(0.9, 0.9, geometry(3000.0), TEMPLATE)]))
    assert natural[0] > natural[1]


def test_the_spectral_weight_matches_whether_the_fusion_uses_it(fusion):
    weight = fused_weight(fusion, FEATURE_NAMES.index("spectral_logit"))
    if "spectral" in fusion.uses:
        assert weight > 0
    else:
        assert weight == 0.0


def test_the_backbone_score_reaches_gan_score_through_the_analyzer(monkeypatch):
    """The Analyzer runs the backbone on every image and feeds it to the fusion: with everything else
    the same, a higher backbone score gives a higher gan_score (the fitted weight is positive)."""
    analyzer = Analyzer(Settings(device="cpu", depth="full"))   # the cascade would skip the spectral detector
    backbone = analyzer.models()[4]
    with Image.open(SAMPLES / "account_a.png") as im:
        image = np.asarray(im.convert("RGB"))
    gan = []
    for value in (0.05, 0.5, 0.95, 0.999):
        monkeypatch.setattr(backbone, "score", lambda images, colourless=None, v=value: np.full(len(images), v, np.float32))
        (sig,) = analyzer.signals([image])
        assert sig.backbone_score == pytest.approx(value)
        gan.append(sig.gan_score)
    assert (np.diff(gan) > 0).all(), gan
    # the detectors the shipped fusion does not use are not run (not even loaded) for the verdict
    fresh = Analyzer(Settings(device="cpu", depth="full"))
    (sig,) = fresh.signals([image])
    uses_spectral = "spectral" in fresh.models()[3]().uses
    assert (sig.spectral_score is None) == (not uses_spectral)
    assert ("spectral.onnx" in fresh.runtime._sessions) == uses_spectral
    # evaluation (fuse=False, or detectors named) asks for all
    (sig,) = analyzer.signals([image], fuse=False)
    assert sig.spectral_score is not None and sig.backbone_score is not None and sig.gan_score is None


def test_decide_and_reasons(fusion):
    t = fusion.thresholds["default"]
    assert fusion.decide(min(t + 1e-3, 1.0), True).verdict == "gan"
    assert fusion.decide(t - 1e-3, True).verdict == "real"
    assert fusion.decide(t - 1e-3, False).verdict == "no_face"
    flagged = fusion.decide(min(t + 1e-3, 1.0), False)
    assert flagged.verdict == "gan" and "pixel detectors alone" in decision_reason(flagged, False)
    with pytest.raises(ValueError):
        fusion.decide(0.5, True, "lenient")
    assert reuse_reason(13, ["old:a.jpg", "old:b.jpg", "other:c.jpg"]) == [
        "same photo as 12 other files in this scan", "seen before in scans old, other"]


def test_reasons_are_short_and_the_operating_point_is_said_apart():
    """Each row's reason names the mode; what the mode promises is operating_point's, said once per page."""
    from facecheck.verdict import Decision, operating_point
    assert decision_reason(Decision("gan", 0.993, 0.87, "default"), True) == \
        "GAN face: gan_score 0.993 >= 0.870 (default mode)"
    assert decision_reason(Decision("no_face", 0.2, 0.87, "strict"), False) == \
        "not flagged: gan_score 0.200 < 0.870 (strict mode)"
    assert operating_point("default") == ("default mode (flags <= 0.1% of real natural photos, "
                                          "<= 1% of real FFHQ-aligned ones)")
    assert "0.01%" in operating_point("strict") and "5%" in operating_point("sensitive")


def test_real_photo_is_not_flagged_and_explained(fusion):
    result = score_image(SAMPLES / "account_a.png", workers=0, device="cpu", depth="full")
    assert result.verdict == "real" and result.depth == "full"
    assert 0 <= result.gan_score < 0.5
    assert 0 <= result.backbone_score < 0.5 and result.backbone_score == round(result.backbone_score, 4)
    assert result.reasons[0].startswith("not flagged: gan_score")
    assert any("StyleGAN template" in r for r in result.reasons)
    assert any("backbone score" in r for r in result.reasons)
    if "spectral" in fusion.uses:
        assert any(r.startswith("spectrum") for r in result.reasons) and result.spectral_score is not None
    else:
        assert result.spectral_score is None and not any(r.startswith("spectrum") for r in result.reasons)
    # through the cascade (the default depth) the spectral detector is skipped where it cannot matter, and
    # the reasons say so
    cascade = score_image(SAMPLES / "account_a.png", workers=0, device="cpu")
    assert cascade.verdict == "real"
    if cascade.depth != "full":
        assert cascade.spectral_score is None and skipped_reason(cascade.depth, fusion.uses) in cascade.reasons


def test_backbone_reason_says_what_the_score_means():
    from facecheck.verdict import backbone_reason
    assert backbone_reason(0.99, 0.96) == ("pixels look like a StyleGAN face to the backbone detector "
                                           "(backbone score 0.990)")
    assert "real photo" in backbone_reason(0.01, 0.96)
    assert "inconclusive" in backbone_reason(0.5, 0.96)


def test_stylegan_faces_score_above_natural_photos(shared_data):
    from facecheck.evaluation.dataset import read_manifest, split_of
    samples = [s for s in read_manifest() if split_of(s) == 0]
    pick = lambda label: [s for s in samples if s.label == label][:6]  # noqa: E731
    scores = {}
    for label in ("stylegan", "real_natural"):
        scores[label] = []
        for s in pick(label):
            with Image.open(s.path) as im:
                copy = degrade.jpeg(degrade.downscale(im.convert("RGB"), 256), 85)
            scores[label].append(score_image(copy, workers=0, device="cpu").gan_score)
    assert np.median(scores["stylegan"]) > np.max(scores["real_natural"])


def test_modes_change_the_threshold_not_the_score():
    results = {mode: score_image(SAMPLES / "account_a.png", workers=0, device="cpu", mode=mode)
               for mode in MODES}
    assert len({r.gan_score for r in results.values()}) == 1
    with pytest.raises(ValueError):
        score_image(SAMPLES / "account_a.png", workers=0, mode="lenient")


def test_eval_writes_json_rows_and_plots(shared_data, tmp_path):
    from facecheck.evaluation.dataset import read_manifest
    data = tmp_path / "labelled"
    chosen = {}
    for s in read_manifest():
        if s.label != "other_gen" and len(chosen.setdefault(s.label, [])) < 3:
            chosen[s.label].append(s)
    for label, samples in chosen.items():
        for s in samples:
            (data / label / s.source).mkdir(parents=True, exist_ok=True)
            shutil.copy(s.path, data / label / s.source / s.path.name)
    out = tmp_path / "eval"
    run = CliRunner().invoke(app, ["eval", str(data), "--out", str(out), "--conditions", "256px_q85,crop90_256px_q85",
                                   "--device", "cpu", "--quiet"])
    assert run.exit_code == 0, run.output
    record = json.loads((out / "eval.json").read_text())
    assert record["images"] == 9 and record["conditions"] == ["256px_q85", "crop90_256px_q85"]
    summary = record["summary"]
    assert summary["by_condition"]["256px_q85"]["n"]["stylegan"] == 3
    assert 0 <= summary["all_conditions"]["auc_vs_real_natural"] <= 1
    assert set(summary["thresholds"]) == set(MODES)
    low, high = summary["by_condition"]["256px_q85"]["default"]["flagged_real_ffhq_interval"]
    assert 0 <= low <= summary["by_condition"]["256px_q85"]["default"]["flagged_real_ffhq"] <= high <= 1
    assert "tpr_interval" not in summary["all_conditions"]["default"]   # copies of one image are not independent
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 18
    # every pixel detector runs in evaluation (depth full by default), whether the shipped fusion uses it or not
    assert all(0 <= r["backbone_score"] <= 1 and 0 <= r["spectral_score"] <= 1 for r in rows if r["error"] is None)
    assert {r["depth"] for r in rows if r["error"] is None} == {"full"}
    assert all(isinstance(r["colourless"], bool) for r in rows if r["error"] is None)
    for png in ("roc.png", "tpr_by_condition.png"):
        with Image.open(out / png) as im:
            assert im.size[0] > 300


def test_share_interval_is_the_exact_binomial_interval():
    from facecheck.evaluation.evaluate import percent, share_interval
    # none flagged among 100: the upper end solves (1 - p)^100 = 0.025
    assert share_interval(np.zeros(100), 0.5) == pytest.approx([0.0, 1 - 0.025 ** (1 / 100)])
    all_flagged = share_interval(np.ones(40), 0.5)
    assert all_flagged[1] == 1.0 and all_flagged[0] == pytest.approx(0.025 ** (1 / 40))
    # 2 of 110 (the test fold's FFHQ count): 1.8%, compatible with anything from ~0.2% to ~6.4%
    low, high = share_interval(np.r_[np.ones(2), np.zeros(108)], 0.5)
    assert 0.001 < low < 0.003 and 0.060 < high < 0.068
    assert share_interval(np.array([]), 0.5) is None
    assert percent(2 / 110, [low, high]).startswith("1.8% (0.2-6.")


def test_eval_refuses_unknown_condition_and_unlabelled_folders(tmp_path):
    (tmp_path / "stylegan").mkdir()
    shutil.copy(SAMPLES / "account_a.png", tmp_path / "stylegan" / "a.png")
    run = CliRunner().invoke(app, ["eval", str(tmp_path), "--conditions", "nope"])
    assert run.exit_code == 2 and "unknown condition" in run.output
    run = CliRunner().invoke(app, ["eval", str(SAMPLES)])
    assert run.exit_code == 2 and "subfolders named" in run.output


def test_eval_refuses_manifests_it_cannot_read_as_labelled_data(tmp_path):
    shutil.copy(SAMPLES / "account_a.png", tmp_path / "a.png")
    cases = {"file,label\na.png,fake\n": "unknown label(s) 'fake'",
             "path,kind\na.png,stylegan\n": "missing file,label",
             "file,label\n": "no rows"}
    for text, message in cases.items():
        (tmp_path / "m.csv").write_text(text)
        run = CliRunner().invoke(app, ["eval", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out")])
        assert run.exit_code == 2 and message in " ".join(run.output.split()), (text, run.output)
    # no source column: each label is its own source; a missing file is a row with an error, not a crash
    (tmp_path / "m.csv").write_text("file,label\na.png,stylegan\nmissing.png,real_natural\n")
    run = CliRunner().invoke(app, ["eval", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"),
                                   "--conditions", "as_stored", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    summary = json.loads((tmp_path / "out" / "eval.json").read_text())["summary"]
    assert summary["errors"] == 1 and set(summary["by_source"]) == {"stylegan/stylegan", "real_natural/real_natural"}
    assert "1 of 2 copies could not be scored" in " ".join(run.output.split())
    # stderr is not a terminal here: the summary table keeps every column whole (rich's default cut it at 80)
    table = run.output.split("facecheck eval:")[1].split("in brackets")[0]
    for column in ("condition", "StyleGAN n", "AUC vs natural", "AUC vs FFHQ", "TPR default", "FPR natural",
                   "FPR FFHQ", "TPR sensitive", "SD flagged"):
        assert column in table, (column, table)
    assert "\u2026" not in table and "as_stored" in table


def test_unflagged_face_on_the_template_gets_a_caveat(fusion):
    from facecheck.verdict import Decision, brief_caveat, has_on_template_caveat, on_template_caveat
    t = fusion.thresholds
    below_default = Decision("real", (t["sensitive"] + t["default"]) / 2, t["default"], "default")
    caveat = on_template_caveat(below_default, geometry(3.0), t)
    assert "FFHQ way" in caveat and "sensitive mode would flag it" in caveat
    assert has_on_template_caveat(["not flagged: ...", caveat]) and not has_on_template_caveat(["eyes 9% away"])
    assert brief_caveat(caveat) == "sensitive mode would flag it"
    assert brief_caveat(on_template_caveat(Decision("real", 0.01, t["default"], "default"), geometry(3.0), t)) is None
    assert brief_caveat("spectrum inconclusive") == "spectrum inconclusive"
    assert on_template_caveat(below_default, geometry(500.0), t) is None      # off the template
    flagged = Decision("gan", 0.99, t["default"], "default")
    assert on_template_caveat(flagged, geometry(3.0), t) is None


def test_sized_conditions_count_only_images_at_least_as_large():
    from facecheck.evaluation.evaluate import conditions
    named = conditions(["400px_q70-85", "256px_q70-85", "crop90_256px_q80", "128px_q70-85"])
    small, large = Image.new("RGB", (300, 200), (90, 120, 150)), Image.new("RGB", (512, 480), (90, 120, 150))
    assert named["400px_q70-85"](small) is None and named["128px_q70-85"](small).size == (128, 85)
    assert named["400px_q70-85"](large).size == (400, 375)
    assert named["crop90_256px_q80"](large).size == (256, 240)
    assert named["256px_q70-85"](small).size == (256, 171)


def load_training_script(name: str):
    """training/<name>.py as a module (training/ is not a package of the install)."""
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "training" / f"{name}.py"
    if not script.is_file():
        pytest.skip("training/ is not beside the tests")
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_row_cache_key_covers_every_model_behind_the_signals(tmp_path, monkeypatch):
    """training/train_fusion.py caches fold-1 signals by model digests: a new backbone.onnx (or
    spectral.onnx) must not reuse signals of the old one, while the geometry part of the key stays."""
    train_fusion = load_training_script("train_fusion")
    from facecheck.runtime import weights_dir
    for f in weights_dir().iterdir():
        (tmp_path / f.name).symlink_to(f.resolve())
    monkeypatch.setenv("FACECHECK_WEIGHTS", str(tmp_path))
    before = train_fusion.models_digest()
    (tmp_path / "backbone.onnx").unlink()
    (tmp_path / "backbone.onnx").write_bytes(b"another backbone")
    after = train_fusion.models_digest()
    assert after != before and after.split("_")[0] == before.split("_")[0]
    assert "backbone.onnx" in train_fusion.MODEL_DIGESTS


def test_colourless_images_repeat_the_pixel_logits_in_their_own_columns():
    from facecheck.verdict import COLOURLESS
    colour = fusion_features(0.9, 0.8, geometry(3.0), TEMPLATE)
    grey = fusion_features(0.9, 0.8, geometry(3.0), TEMPLATE, colourless=True)
    assert FEATURE_NAMES[COLOURLESS:] == ["colourless", "colourless_spectral_logit", "colourless_backbone_logit"]
    assert (colour[COLOURLESS:] == 0).all()
    assert grey[COLOURLESS:].tolist() == pytest.approx([1.0, colour[0], colour[1]])
    assert (grey[:COLOURLESS] == colour[:COLOURLESS]).all()


def test_colourless_refit_keeps_every_colour_score_and_the_grey_targets(tmp_path):
    """train_fusion.refit_colourless (the fifth-round rule of issue 20): only the three colourless terms move, so a
    colour image's gan_score is the previous fusion's; half B's grey copies keep each mode's FFHQ-aligned target at
    that mode's threshold, and one mode binds (a slightly larger offset would break it)."""
    pytest.importorskip("scipy")
    pytest.importorskip("onnx")
    from facecheck.evaluation.evaluate import Row
    from facecheck.verdict import COLOURLESS, TARGET_FPR_FFHQ
    train_fusion = load_training_script("train_fusion")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1500):
        label = ("stylegan", "real_ffhq", "real_natural")[i % 3]
        for condition, grey in (("as_stored", False), ("grey_400px_q70", True)):
            mean = {"stylegan": 2.0, "real_ffhq": 0.5, "real_natural": -2.0}[label] - (1.0 if grey else 0.0)
            spectral, backbone = 1 / (1 + np.exp(-rng.normal(mean, 1.5, 2)))
            rows.append(Row(file=f"{label}_{i}.png", label=label, source=label, condition=condition,
                            geometry=geometry(rng.uniform(0.5, 6.0)), faces_found=1, spectral_score=float(spectral),
                            backbone_score=float(backbone), colourless=grey))
    coef = np.zeros(len(FEATURE_NAMES))
    coef[:3] = (0.3, 0.8, -0.5)
    thresholds = {"strict": 0.99, "default": 0.95, "sensitive": 0.85}
    previous = tmp_path / "fusion.onnx"
    train_fusion.export(coef, 0.2, previous, {f"threshold_{m}": repr(t) for m, t in thresholds.items()}
                        | {"features": ",".join(FEATURE_NAMES), "variant": "(c) geometry + spectral + backbone"})
    fit_rows, thr_rows = train_fusion.halves(rows)
    new, intercept, kept, _, _ = train_fusion.refit_colourless(previous, fit_rows, thr_rows)
    assert kept == pytest.approx(thresholds) and intercept == pytest.approx(0.2)
    assert new[:COLOURLESS] == pytest.approx(coef[:COLOURLESS]) and (new[COLOURLESS:] != 0).all()
    colour = [r for r in rows if not r.colourless]
    assert train_fusion.predict(new, intercept, colour) == pytest.approx(train_fusion.predict(coef, 0.2, colour))
    grey_ffhq = [r for r in thr_rows if r.colourless and r.label == "real_ffhq"]
    nudged = new.copy()
    nudged[COLOURLESS] += 0.05
    binds = False
    for mode in MODES:
        assert np.mean(train_fusion.predict(new, intercept, grey_ffhq) >= kept[mode]) <= TARGET_FPR_FFHQ[mode]
        binds |= np.mean(train_fusion.predict(nudged, intercept, grey_ffhq) >= kept[mode]) > TARGET_FPR_FFHQ[mode]
    assert binds


def test_a_backbone_pair_of_one_model_with_itself_scores_as_that_model(tmp_path):
    """training/backbone_pair.py (issue 20, sixth round): the pair graph averages its members' calibrated logits, so a
    pair of the shipped backbone with itself gives the shipped backbone's scores, and drops in for it."""
    pytest.importorskip("onnx")
    import onnxruntime as ort
    from facecheck.runtime import weights_path
    pair = load_training_script("backbone_pair")
    member = weights_path("backbone.onnx")
    out = tmp_path / "pair.onnx"
    pair.build(member, member, out)
    assert pair.member_parity(out, member, member) < 1e-5
    x = np.random.default_rng(1).uniform(0, 255, (4, 128, 128, 3)).astype(np.float32)
    one, two = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["score"], {"image": x})[0]
                for p in (member, out))
    assert two == pytest.approx(one, abs=1e-5)


def test_skipped_reasons_name_only_detectors_the_fusion_would_run():
    """A fusion that gives the spectral detector no weight never runs it: a row the cascade stopped early must
    not say the spectral detector was skipped for it."""
    without = frozenset({"backbone"})
    assert "spectral" not in skipped_reason("cheap", without) and "FaceMesh" in skipped_reason("cheap", without)
    assert skipped_reason("eyes", without) is None and skipped_reason("full", without) is None
    both = frozenset({"spectral", "backbone"})
    assert "spectral" in skipped_reason("cheap", both) and "spectral" in skipped_reason("eyes", both)
