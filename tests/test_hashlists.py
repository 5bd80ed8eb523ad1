"""Imported hash lists (`--known-hashes`) and `facecheck export --format pdq`."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facecheck.evaluation import degrade
from facecheck.hashlists import parse_list
from facecheck.pdq import pdq

from conftest import SAMPLES


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facecheck", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def rows_of(out) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "results.jsonl").read_text(encoding="utf-8").splitlines())}


def test_list_with_transformed_copies_among_aligned_face_distractors(shared_data, tmp_path):
    from facecheck.evaluation.dataset import read_manifest
    faces = sorted((s for s in read_manifest() if s.label in ("stylegan", "real_ffhq")),
                   key=lambda s: hashlib.sha256(s.path.name.encode()).hexdigest())[:60]
    listed, distractors = faces[:20], faces[20:]
    folder = tmp_path / "in"
    folder.mkdir()
    lines = ["pdq,label"]
    reposts = [lambda im: degrade.jpeg(degrade.resize_to(im, 150), 70), degrade.mirror,
               lambda im: degrade.add_border(degrade.resize_to(im, 300), 12 / 300),
               lambda im: degrade.jpeg(degrade.resize_to(im, 256), 80),
               lambda im: degrade.brightness_gamma(im, gamma=0.8)]
    for k, s in enumerate(listed):
        with Image.open(s.path) as im:
            original = im.convert("RGB")
        lines.append(f"{pdq(np.asarray(original)).hash},network-{k}")
        reposts[k % len(reposts)](original).save(folder / f"copy_{k:02d}.png")
    for k, s in enumerate(distractors):
        with Image.open(s.path) as im:
            degrade.jpeg(im.convert("RGB"), 85).save(folder / f"other_{k:02d}.jpg")
    (tmp_path / "shared.csv").write_text("\n".join(lines) + "\n")
    run = cli("scan", folder, "--out", tmp_path / "out", "--known-hashes", tmp_path / "shared.csv", "--quiet",
              "--device", "cpu")
    assert run.returncode == 0, run.stderr
    rows = rows_of(tmp_path / "out")
    for k in range(20):
        matches = rows[f"copy_{k:02d}.png"]["known_matches"]
        assert [m["label"] for m in matches] == [f"network-{k}"], (k, matches)
        assert any("network-" in r for r in rows[f"copy_{k:02d}.png"]["reasons"])
    assert all(rows[f"other_{k:02d}.jpg"]["known_matches"] == [] for k in range(len(distractors)))
    assert "network-0" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_export_then_match_round_trip_and_phash_lists(tmp_path):
    first = tmp_path / "first"
    assert cli("scan", SAMPLES, "--out", first, "--quiet", "--device", "cpu").returncode == 0
    exported = tmp_path / "found.csv"
    run = cli("export", first, "--format", "pdq", "--to", exported)
    assert run.returncode == 0, run.stderr
    entries = parse_list(exported.read_text(), "found.csv")
    group = {p for p, r in rows_of(first).items() if r["cluster"] is not None}
    assert len(group) >= 2 and len(entries) >= 2
    # a pHash list in plain text, one hash and label a line, beside the PDQ list
    rocket = rows_of(first)["rocket.jpg"]
    (tmp_path / "phash.txt").write_text(f"# shared by another team\n{rocket['phash']}\trocket launch\n")
    second = tmp_path / "second"
    run = cli("scan", SAMPLES, "--out", second, "--quiet", "--device", "cpu", "--known-hashes", exported,
              "--known-hashes", tmp_path / "phash.txt")
    assert run.returncode == 0, run.stderr
    rows = rows_of(second)
    for path in group:
        assert any(m["list"] == "found.csv" for m in rows[path]["known_matches"]), path
    assert [m["label"] for m in rows["rocket.jpg"]["known_matches"]] == ["rocket launch"]
    assert rows["coffee.jpg"]["known_matches"] == []


def test_a_bad_list_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("ffff\n")
    out = tmp_path / "out"
    run = cli("scan", SAMPLES, "--out", out, "--known-hashes", bad)
    assert run.returncode == 2 and "bad.txt, line 1" in run.stderr and not out.exists()
    run = cli("check", SAMPLES / "rocket.jpg", "--known-hashes", tmp_path / "missing.csv")
    assert run.returncode == 2 and "missing.csv" in run.stderr


def test_headers_and_separators():
    pdq_hex, phash_hex = "0f" * 32, "a1" * 8
    assert parse_list(f"Hash,Label\n{pdq_hex},net A\n", "x") == [("x", "net A", "pdq", pdq_hex)]
    assert parse_list(f"{phash_hex};two words\n\n# note\n{pdq_hex}\n", "y") == [
        ("y", "two words", "phash", phash_hex), ("y", "", "pdq", pdq_hex)]
    with pytest.raises(ValueError, match="line 2"):
        parse_list(f"pdq\n{pdq_hex[:-1]}\n", "z")


def test_the_persistent_index_keeps_pdq_beside_dct256(tmp_path):
    import sqlite3
    index = tmp_path / "known.sqlite"
    assert cli("scan", SAMPLES, "--out", tmp_path / "out", "--index", index, "--quiet", "--device", "cpu").returncode == 0
    rows = rows_of(tmp_path / "out")
    with sqlite3.connect(index) as db:
        stored = dict(db.execute("SELECT path, pdq FROM avatars").fetchall())
    decoded = {p: r["pdq"] for p, r in rows.items() if r["error"] is None}
    assert stored == decoded and all(len(h) == 64 for h in stored.values())
