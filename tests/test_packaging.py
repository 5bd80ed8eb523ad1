"""The installed package ships its models and the report's template: a wheel built from the repo holds
every ONNX file, the eye template, each model card and report.html's Jinja2 templates, and the console
script works from any directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import facecheck
from facecheck.runtime import weights_dir

from conftest import REPO, SAMPLES

CHECKOUT_WEIGHTS = REPO / "weights"


def shipped_files() -> list[str]:
    """What the runtime needs: every model and the eye template, each with its card."""
    names = sorted(p.name for p in CHECKOUT_WEIGHTS.iterdir() if p.suffix in (".onnx", ".json"))
    return names + sorted({Path(n).stem + ".md" for n in names})


def test_every_model_has_a_card_and_is_where_the_runtime_looks():
    names = shipped_files()
    assert any(n.endswith(".onnx") for n in names)
    for name in names:
        assert (weights_dir() / name).is_file(), f"{name} missing from {weights_dir()}"


def test_ci_tests_the_installed_wheel_not_the_checkout():
    if not os.environ.get("FACECHECK_EXPECT_INSTALLED"):
        pytest.skip("only under .ci/run, which installs the built wheel (FACECHECK_EXPECT_INSTALLED=1)")
    package = Path(facecheck.__file__).resolve().parent
    assert package != REPO / "facecheck" and "site-packages" in package.parts, \
        f"facecheck was imported from the checkout ({package}), not from the installed wheel"
    assert weights_dir() == package / "weights"


def test_a_wheel_built_from_the_repo_contains_the_models(tmp_path):
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("no checkout to build from")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                            str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    if build.returncode != 0 and "Could not find a version that satisfies" in build.stderr:
        pytest.skip(f"cannot fetch the build backend here: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("facecheck-*.whl")
    members = set(zipfile.ZipFile(wheel).namelist())
    for name in shipped_files():
        assert f"facecheck/weights/{name}" in members, f"the wheel lacks facecheck/weights/{name}"
    for name in report_templates():
        assert f"facecheck/report/templates/{name}" in members, f"the wheel lacks report template {name}"
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "facecheck").rglob("*.py"))
    missing = [m for m in modules if m not in members]
    assert not missing, f"the wheel lacks these modules (a subpackage missing from pyproject's packages?): {missing}"


def report_templates() -> list[str]:
    """The files report.html is rendered from (Jinja2 templates and the style they include)."""
    return sorted(p.name for p in (REPO / "facecheck" / "report" / "templates").iterdir() if p.is_file())


def test_the_report_template_is_where_the_renderer_looks():
    """Installed or not, the template loader finds every template file beside the report package."""
    from facecheck.report import render
    names = report_templates()
    assert "report.html.j2" in names
    for name in names:
        assert render.environment().loader.get_source(render.environment(), name)[0], name


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "facecheck"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facecheck"]


def test_check_and_scan_run_from_another_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "FACECHECK_WEIGHTS"}
    check = subprocess.run(console_script() + ["check", str(SAMPLES / "account_a.png"), "--json", "--device", "cpu"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    row = json.loads(check.stdout)
    assert row["error"] is None and row["verdict"] in ("gan", "real", "no_face")
    scan = subprocess.run(console_script() + ["scan", str(SAMPLES), "--out", "out", "--quiet", "--device", "cpu"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert scan.returncode == 0, scan.stderr
    rows = [json.loads(line) for line in (elsewhere / "out" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == sum(1 for p in SAMPLES.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert (elsewhere / "out" / "report.html").is_file()
