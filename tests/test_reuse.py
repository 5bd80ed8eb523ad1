"""Reused avatars across files and scans: exact copies, the persistent index, and its checks."""
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import facecheck
from facecheck import duplicates
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
from facecheck.evaluation import degrade
from facecheck.evaluation.dataset import read_manifest
from facecheck.hashing import signatures
from facecheck.loading import load_image

from conftest import SAMPLES


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facecheck", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture
def detailed():
    """A photo made of fine detail: a registration grid without the identity scored it 0.40 against itself."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))


def test_a_thumbnail_scores_one_against_itself(detailed, photo):
    for sig in signatures([detailed, photo]):
        assert duplicates.registered_similarity(sig.thumbnail, sig.thumbnail) > 0.999


def test_detailed_photos_of_the_data_score_one_against_themselves(shared_data):
    """The sources where copies once failed to match themselves (SD 2.1 faces and Pixabay portraits,
    12 of their 659 images before the identity was tried), every image of them."""
    samples = [s for s in read_manifest() if s.source in ("sdfd_sd21", "hossein_pixabay_portraits")]
    assert samples, "the data no longer holds these sources"
    low = []
    for start in range(0, len(samples), 128):
        chunk = samples[start:start + 128]
        for s, sig in zip(chunk, signatures([load_image(s.path).image for s in chunk])):
            if duplicates.registered_similarity(sig.thumbnail, sig.thumbnail) < 0.999:
                low.append(s.path.name)
    assert low == []


def test_identical_files_always_group_whatever_the_verification_says(tmp_path, detailed, photo, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        detailed.save(folder / name)
    degrade.jpeg(detailed, 95).save(folder / "recompressed.jpg")
    photo.save(folder / "other.png")
    # verification that matches nothing: only the bytes can group the copies
    monkeypatch.setattr(duplicates, "registered_similarity", lambda a, b, **options: 0.0)
    rows = {r.path: r for r in facecheck.scan(folder, out=tmp_path / "out", workers=0)}
    assert rows["a.png"].cluster is not None and rows["a.png"].cluster_size == 3
    assert rows["a.png"].cluster == rows["b.png"].cluster == rows["c.png"].cluster
    assert rows["recompressed.jpg"].cluster is None and rows["other.png"].cluster is None


def test_rerun_with_the_same_index_is_not_seen_before_in_itself(tmp_path, photo):
    folder, index, out = tmp_path / "in", tmp_path / "known.sqlite", tmp_path / "out"
    folder.mkdir()
    photo.save(folder / "orig.png")
    degrade.jpeg(degrade.mirror(photo), 80).save(folder / "copy.jpg")
    Image.open(SAMPLES / "rocket.jpg").save(folder / "rocket.png")
    for _ in range(2):   # the same command twice: a rerun
        rows = {r.path: r for r in facecheck.scan(folder, out=out, index=index, workers=0)}
        assert [r.seen_before for r in rows.values()] == [False] * 3, {p: r.seen_in for p, r in rows.items()}
        assert rows["orig.png"].cluster == rows["copy.jpg"].cluster is not None
    # a scan under another name still finds them, in the first scan
    later = list(facecheck.scan(folder, out=tmp_path / "later", index=index, workers=0))
    assert all(r.seen_before for r in later)
    # (a scan without --name is named after its --out folder and the scanned folder: issue 19 item 2)
    first_scan = f"out of {folder.resolve()}:"
    assert later[0].seen_in is not None and all(place.startswith(first_scan) for place in later[0].seen_in)


@pytest.fixture
def not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("these are notes, not a database\n" * 20)
    return bad


def test_bad_index_is_refused_before_any_work(tmp_path, photo, not_a_database):
    folder = tmp_path / "in"
    folder.mkdir()
    photo.save(folder / "a.png")
    out = tmp_path / "out"
    proc = run_cli("scan", folder, "--out", out, "--index", not_a_database, "--quiet")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and str(not_a_database) in proc.stderr
    assert not out.exists()
    proc = run_cli("check", folder / "a.png", "--index", tmp_path)   # a folder
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="bad.sqlite"):
        facecheck.scan(folder, out=out, index=not_a_database, workers=0)   # at the call, before iterating
    with pytest.raises(ValueError, match="bad.sqlite"):
        facecheck.score_image(folder / "a.png", index=not_a_database)
    with pytest.raises(ValueError, match="something else"):
        db = sqlite3.connect(tmp_path / "other.sqlite")
        db.execute("CREATE TABLE notes (x)")
        db.close()
        run_scan([(folder / "a.png", "a.png")], out, Settings(workers=0, index=tmp_path / "other.sqlite"))
    assert not out.exists()


def test_check_looks_up_without_creating_anything(tmp_path, photo):
    image = tmp_path / "a.png"
    photo.save(image)
    missing = tmp_path / "no" / "such" / "known.sqlite"
    proc = run_cli("check", image, "--index", missing)
    assert proc.returncode == 0, proc.stderr
    assert "not in the index of known avatars" in proc.stdout
    assert not (tmp_path / "no").exists()
    # an existing index is read, never written
    index = tmp_path / "known.sqlite"
    folder = tmp_path / "in"
    folder.mkdir()
    photo.save(folder / "x.png")
    list(facecheck.scan(folder, out=tmp_path / "out", index=index, scan_name="march", workers=0))
    before = index.read_bytes()
    result = facecheck.score_image(image, index=index)
    assert result.seen_before is True and result.seen_in == ["march:x.png"]
    assert index.read_bytes() == before


def test_grouping_reports_its_progress(tmp_path, photo):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        photo.resize((200 + 10 * i, 200 + 10 * i)).save(folder / f"{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"not an image")
    calls = []
    run_scan(walk(folder), tmp_path / "out", Settings(workers=0),
                    grouping_progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)           # the five decoded files are matched
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_scan_command_shows_the_grouping_phase(tmp_path, photo):
    folder = tmp_path / "in"
    folder.mkdir()
    photo.save(folder / "a.png")
    photo.save(folder / "b.png")
    proc = run_cli("scan", folder, "--out", tmp_path / "out", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    assert "scanning" in proc.stderr and "grouping" in proc.stderr


def test_look_alike_aligned_faces_of_different_people_stay_apart(shared_data):
    """Two thispersondoesnotexist faces of different people (other background, other face), same pose
    in FFHQ alignment: the verification of 0.81 joined them (correlation 0.825), as the held-out set's
    two false merges were joined. `bench_duplicates.py` found them among its look-alike distractors."""
    from test_hashing import group_files
    by_name = {s.path.name: s for s in read_manifest() if s.source == "bhunakit_tpdne_128"}
    pair = [by_name.get(name) for name in ("6d4ce46a08f5.jpg", "7218fb3adc32.jpg")]
    assert all(pair), "the data no longer holds the look-alike pair"
    faces = [load_image(s.path).image for s in pair]
    assert group_files(faces) == [0, 1]
    # while each one's reposts still join it
    assert group_files([faces[0], degrade.jpeg(degrade.resize_to(faces[0], 300), 70),
                        degrade.mirror(faces[1]), faces[1]]) == [0, 0, 2, 2]
