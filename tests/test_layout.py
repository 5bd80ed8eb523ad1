"""The package's layout holds: the scan path never imports the evaluation subpackage (its data and
degradations are for measuring, not for scanning), and the moved helpers still find what they look for."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from conftest import REPO, SAMPLES

# Runs in a fresh interpreter, so that modules imported by other tests do not count.
SCAN_THEN_LIST_MODULES = """
import json, sys
from facecheck import engine
import facecheck.cli, facecheck.report
from pathlib import Path
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
engine.run_scan(list(engine.walk(folder)), out, engine.Settings(workers=0, device="cpu"))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("facecheck"))))
"""
EVALUATION_MODULES = ("facecheck.evaluation", "facecheck.dataset", "facecheck.degrade")   # new and old homes


def test_a_scan_never_imports_the_evaluation_package(tmp_path):
    folder = tmp_path / "avatars"
    folder.mkdir()
    for name in ("account_a.png", "coffee.jpg", "not_an_image.jpg"):
        shutil.copyfile(SAMPLES / name, folder / name)
    proc = subprocess.run([sys.executable, "-c", SCAN_THEN_LIST_MODULES, str(folder), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "facecheck.engine" in modules and "facecheck.report" in modules   # the scan did run
    assert (tmp_path / "out" / "report.html").is_file()
    imported = [m for m in modules if any(m == e or m.startswith(e + ".") for e in EVALUATION_MODULES)]
    assert not imported, f"the scan path imported {imported}"


def test_data_root_finds_shared_data_beside_the_checkout_from_anywhere(tmp_path, monkeypatch):
    """data_root looks beside the checkout the package lives in (and beside the working directory);
    moved one folder deeper, it must still look beside the checkout, not inside it."""
    from facecheck.evaluation import dataset
    monkeypatch.delenv("FACECHECK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    checkout = dataset.Path(dataset.__file__).resolve().parents[2]
    if not (checkout / "pyproject.toml").is_file():
        import pytest
        pytest.skip("facecheck is installed from a wheel: there is no checkout beside it")
    beside = checkout.parent / "shared" / "data"
    expected = beside if (beside / "manifest.csv").is_file() else None
    assert dataset.data_root() == expected
