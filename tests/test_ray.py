"""`--engine ray` runs the same analysis as the local engine, on a local Ray cluster of 2 CPUs: same
files, verdicts and groups, scores within 1e-3, and the same resume."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from facecheck import engine
from facecheck.evaluation import degrade

from conftest import SAMPLES

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'facecheck[ray]'); "
                                       ".ci/run installs it, so CI runs this test")

SCORES = ("gan_score", "spectral_score", "backbone_score", "eye_score")


def rows_of(out) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "results.jsonl").read_text(encoding="utf-8").splitlines())}


def scan_cli(folder, out, *extra):
    run = subprocess.run([sys.executable, "-m", "facecheck", "scan", str(folder), "--out", str(out), "--quiet",
                          "--device", "cpu", "--workers", "2", *extra], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The samples (a reused photo, unrelated photos, broken files) plus reposts of two of them."""
    root = tmp_path_factory.mktemp("ray") / "in"
    shutil.copytree(SAMPLES, root)
    with Image.open(SAMPLES / "rocket.jpg") as im:
        rocket = im.convert("RGB")
    degrade.jpeg(degrade.resize_to(degrade.mirror(rocket), 150), 70).save(root / "rocket_repost.jpg")
    degrade.jpeg(degrade.crop_fraction(rocket, 0.05), 85).save(root / "rocket_crop.jpg")
    return root


def test_ray_engine_gives_the_local_engines_results(folder, tmp_path):
    scan_cli(folder, tmp_path / "local")
    scan_cli(folder, tmp_path / "ray", "--engine", "ray")
    local, ray = rows_of(tmp_path / "local"), rows_of(tmp_path / "ray")
    assert set(local) == set(ray) and len(local) == 12
    for path, a in local.items():
        b = ray[path]
        for key in ("sha256", "error", "verdict", "phash", "dct256", "faces", "on_template", "cluster_size"):
            assert a[key] == b[key], (path, key, a[key], b[key])
        for key in SCORES:
            assert (a[key] is None) == (b[key] is None) and (a[key] is None or abs(a[key] - b[key]) <= 1e-3), (path, key)

    def groups(rows):
        by_cluster = {}
        for path, r in rows.items():
            if r["cluster"] is not None:
                by_cluster.setdefault(r["cluster"], set()).add(path)
        return sorted(map(sorted, by_cluster.values()))
    assert groups(local) == groups(ray) and len(groups(ray)) == 2
    assert (tmp_path / "ray" / "report.html").is_file()


def test_ray_scan_resumes_like_a_local_one(folder, tmp_path):
    out = tmp_path / "ray"
    summary = engine.run_scan(engine.walk(folder), out, engine.Settings(engine="ray", workers=2, device="cpu"))
    assert summary.scanned == 12
    (folder / "new.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    again = engine.run_scan(engine.walk(folder), out, engine.Settings(engine="ray", workers=2, device="cpu"))
    assert (again.files, again.scanned) == (13, 3)   # the new file, and the two broken ones retried
    assert len(rows_of(out)) == 13
    (folder / "new.jpg").unlink()


def test_without_ray_the_cli_says_what_to_install(tmp_path, monkeypatch):
    run = subprocess.run([sys.executable, "-c", "import sys; sys.modules['ray'] = None; "
                          "from facecheck.cli import main; sys.argv = ['facecheck', 'scan', %r, '--out', %r, "
                          "'--engine', 'ray']; main()" % (str(SAMPLES), str(tmp_path / "out"))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "facecheck[ray]" in run.stderr
