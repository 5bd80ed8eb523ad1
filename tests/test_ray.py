"""`--engine ray` runs the same analysis as the local engine, on a local Ray cluster of 2 CPUs: same
files, verdicts and groups, scores within 1e-3, and the same resume."""
from __future__ import annotations

import json
import re
import socket
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from facecheck.api import scan
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
from facecheck.evaluation import degrade

from conftest import SAMPLES

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'facecheck[ray]'); "
                                       ".ci/run installs it, so CI runs this test")

SCORES = ("gan_score", "spectral_score", "backbone_score", "eye_score")


def rows_of(out) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "results.jsonl").read_text(encoding="utf-8").splitlines())}


def error_level_lines(stderr: str) -> list[str]:
    """Ray's own error-level log lines ("[2026-12-03 13:17:37,653 E 8840 8840] core_worker.cc: ...") and
    Python logging's ERROR lines."""
    return [line for line in stderr.splitlines() if re.match(r"^\[[\d\-: ,]+ E \d+ \d+\]", line) or "ERROR" in line]


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
    run = scan_cli(folder, tmp_path / "ray", "--engine", "ray")
    assert not error_level_lines(run.stderr), run.stderr[-3000:]   # Ray Data's actor pools logged one per scan
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
    summary = run_scan(walk(folder), out, Settings(engine="ray", workers=2, device="cpu"))
    assert summary.scanned == 12
    (folder / "new.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    again = run_scan(walk(folder), out, Settings(engine="ray", workers=2, device="cpu"))
    assert (again.files, again.scanned) == (13, 3)   # the new file, and the two broken ones retried
    assert len(rows_of(out)) == 13
    (folder / "new.jpg").unlink()


def test_without_ray_the_cli_says_what_to_install(tmp_path, monkeypatch):
    run = subprocess.run([sys.executable, "-c", "import sys; sys.modules['ray'] = None; "
                          "from facecheck.cli import main; sys.argv = ['facecheck', 'scan', %r, '--out', %r, "
                          "'--engine', 'ray']; main()" % (str(SAMPLES), str(tmp_path / "out"))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "facecheck[ray]" in run.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cluster_that_cannot_be_joined_is_refused_in_one_line_before_any_work(tmp_path, monkeypatch):
    """A bad form, `auto` with no cluster, a port nobody listens on: one line, exit 2, no --out. The
    unreachable address used to hang for minutes, the others printed tracebacks and left --out behind."""
    from facecheck.cli import app
    from typer.testing import CliRunner
    port = free_port()
    # `auto` takes RAY_ADDRESS first (else the cluster last started on this machine, which may be running)
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    cases = {"bogus": "--address must be auto, HOST:PORT",
             "http://x": "--address must be auto, HOST:PORT",
             f"127.0.0.1:{port}": f"cannot reach a Ray cluster at 127.0.0.1:{port}",
             "auto": f":{port}): Connection refused"}   # Ray writes the host as this machine's address
    for address, message in cases.items():
        out = tmp_path / "never"
        run = CliRunner().invoke(app, ["scan", str(SAMPLES), "--out", str(out), "--engine", "ray", "--address", address])
        assert run.exit_code == 2 and run.output.startswith("error: ") and message in run.output, (address, run.output)
        assert len(run.output.strip().splitlines()) == 1 and not out.exists(), (address, run.output)
    with pytest.raises(ValueError, match="ray_address must be auto"):
        scan(SAMPLES, engine="ray", ray_address="bogus")
    with pytest.raises(ValueError, match="ray_address goes with engine ray"):
        scan(SAMPLES, ray_address="auto")


def test_ray_client_addresses_are_checked_and_the_extra_installs_the_client(tmp_path):
    """`ray://HEAD:10001`, which the README documents, needs ray[client]: the extra installs it, and
    without it the scan says so in one line."""
    import tomllib
    from facecheck.cli import app
    from typer.testing import CliRunner
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    (ray,) = pyproject["project"]["optional-dependencies"]["ray"]
    assert re.match(r"ray\[[a-z,]*\bclient\b", ray) and "data" in ray, ray
    run = CliRunner().invoke(app, ["scan", str(SAMPLES), "--out", str(tmp_path / "never"), "--engine", "ray",
                                   "--address", f"ray://127.0.0.1:{free_port()}"])
    assert run.exit_code == 2 and len(run.output.strip().splitlines()) == 1 and not (tmp_path / "never").exists()
    assert "needs ray[client]" in run.output or "cannot reach a Ray cluster" in run.output, run.output
