"""The package's layout holds: the scan path never imports the evaluation subpackage (its data and
degradations are for measuring, not for scanning), and the moved helpers still find what they look for."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLES

# Runs in a fresh interpreter, so that modules imported by other tests do not count.
SCAN_THEN_LIST_MODULES = """
import json, sys
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
import facecheck.cli, facecheck.report
from pathlib import Path
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
run_scan(list(walk(folder)), out, Settings(workers=0, device="cpu"))
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
    assert "facecheck.pipeline.run" in modules and "facecheck.report" in modules   # the scan did run
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


# ------------------------------------------------------------------ the house's rules, read from the source

def _package_modules() -> dict[str, Path]:
    import facecheck
    root = Path(facecheck.__file__).resolve().parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(("facecheck",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        modules[name] = path
    return modules


def _imports(name: str, path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file, at any depth (a lazy import
    inside a function is a dependency too)."""
    import ast
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:   # `from . import x` may name a submodule
                sub = f"{target}.{a.name}"
                found.append((sub, []) if sub in _package_modules() else (target, [a.name]))
    return [(t, n) for t, n in found if t == "facecheck" or t.startswith("facecheck.")]


def test_no_import_circle_inside_the_package():
    modules = _package_modules()
    graph = {m: {t for t, _ in _imports(m, p) if t in modules and t != m and t != "facecheck"}
             for m, p in modules.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_module_reaches_into_anothers_private_names():
    modules = _package_modules()
    reaching = [f"{m} takes {n} from {t}" for m, p in modules.items() for t, names in _imports(m, p)
                for n in names if n.startswith("_") and not n.startswith("__") and t != m]
    assert not reaching, reaching


def test_modules_stay_readable_in_size():
    too_long = {m: n for m, p in _package_modules().items()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not too_long, too_long


def test_the_schedulers_never_import_each_other_nor_the_layers_above():
    modules = _package_modules()
    above = ("facecheck.api", "facecheck.cli", "facecheck.pipeline.run", "facecheck.pipeline.finish")
    for scheduler, other in (("local_scheduler", "ray_scheduler"), ("ray_scheduler", "local_scheduler")):
        name = f"facecheck.pipeline.{scheduler}"
        targets = {t for t, _ in _imports(name, modules[name])}
        assert f"facecheck.pipeline.{other}" not in targets
        assert not targets & set(above), (name, targets & set(above))
