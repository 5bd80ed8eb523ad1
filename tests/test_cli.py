"""The CLI and the API end to end on temporary folders."""
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import facecheck
from facecheck.pipeline.local_scheduler import prepared_stream
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings, worker_cap_note, worker_count
from facecheck.writers import read_results
from facecheck.evaluation import degrade
from facecheck.cli import app

from conftest import SAMPLES


def invoke(*args):
    """The CLI in this process (typer's runner): for checks that must not load models or scan."""
    return CliRunner().invoke(app, [str(a) for a in args])


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facecheck", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture
def folder(tmp_path, photo):
    """Nested folders with a reused avatar, an unrelated photo, bad files, a unicode name and a symlink loop."""
    root = tmp_path / "in"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    photo.save(root / "a" / "orig.png")
    degrade.jpeg(degrade.resize_to(degrade.mirror(photo), 150), 70).save(root / "b" / "copy.jpg")
    degrade.jpeg(degrade.crop_fraction(photo, 0.06), 85).save(root / "a" / "deep" / "аватар.jpg")
    Image.open(SAMPLES / "rocket.jpg").save(root / "b" / "rocket.png")
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "b" / "page.jpg").write_text("<html>gone</html>")
    (root / "a" / "loop").symlink_to(root)
    return root


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scan_end_to_end(folder, tmp_path):
    out = tmp_path / "out" / "new"
    proc = run_cli("scan", folder, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = {r["path"]: r for r in read_jsonl(out / "results.jsonl")}
    assert set(rows) == {"a/orig.png", "a/deep/аватар.jpg", "b/copy.jpg", "b/rocket.png", "b/empty.jpg", "b/page.jpg"}
    assert rows["b/empty.jpg"]["error"] == "empty file" and "HTML" in rows["b/page.jpg"]["error"]
    group = {rows[p]["cluster"] for p in ("a/orig.png", "a/deep/аватар.jpg", "b/copy.jpg")}
    assert len(group) == 1 and None not in group and rows["a/orig.png"]["cluster_size"] == 3
    assert rows["b/rocket.png"]["cluster"] is None
    orig = rows["a/orig.png"]
    assert orig["phash"] == str(imagehash.phash(Image.open(folder / "a" / "orig.png"))) and len(orig["dct256"]) == 64
    assert (orig["width"], orig["height"]) == (300, 300) and len(orig["sha256"]) == 64
    for key in ("verdict", "gan_score", "eye_score", "spectral_score", "backbone_score", "eyes"):
        assert key in orig
    # the astronaut's face is found, her eyes are far from the StyleGAN template; the rocket has no face
    assert orig["faces"] >= 1 and len(orig["eyes"]) == 2 and orig["eyes"][0][0] < orig["eyes"][1][0]
    assert orig["eye_score"] < 0.01
    assert rows["b/rocket.png"]["faces"] == 0 and rows["b/rocket.png"]["verdict"] == "no_face"
    assert rows["b/empty.jpg"]["verdict"] == "error"
    header = (out / "results.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:6] == ["path", "sha256", "width", "height", "error", "phash"]
    assert not any(p.name.startswith(("results", "state")) for p in folder.rglob("*"))   # nothing written in FOLDER


def test_bad_arguments_exit_non_zero(folder, tmp_path):
    proc = run_cli("scan", tmp_path / "missing", "--out", tmp_path / "o")
    assert proc.returncode != 0 and "no such folder" in proc.stderr
    proc = run_cli("scan", folder, "--out", folder / "results")
    assert proc.returncode != 0 and "inside the scanned folder" in proc.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("scan", folder, "--out", blocker / "sub")
    assert proc.returncode != 0 and "cannot write" in proc.stderr


def test_check_json_is_a_results_row(folder):
    proc = run_cli("check", folder / "b" / "copy.jpg", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["phash"] == str(imagehash.phash(Image.open(folder / "b" / "copy.jpg")))
    proc = run_cli("check", folder / "b" / "page.jpg", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"].startswith("not an image")


def test_check_exits_1_when_it_reaches_no_verdict(folder):
    """A folder, an HTML page, a truncated file: the account is printed, and the status says no verdict."""
    for target, message in [(folder / "b" / "page.jpg", "error: not an image"), (folder / "b", "error: is a directory"),
                            (SAMPLES / "truncated.jpg", "error: cannot decode image")]:
        run = invoke("check", target, "--device", "cpu")
        assert run.exit_code == 1 and message in run.output, (target, run.output)
        assert run.output.startswith(str(target))
    run = invoke("check", folder / "a" / "orig.png", "--device", "cpu")
    assert run.exit_code == 0 and "verdict: real" in run.output


def test_check_prints_each_score_one_way_and_the_operating_point_once(folder, monkeypatch, fusion_with_spectral):
    """gan_score 0.57849 used to read "GAN score 0.579" (from the rounded result) beside "gan_score 0.578"
    (from the raw value); the same for the spectral score."""
    from facecheck.spectrum import SpectralDetector
    from facecheck.verdict import FusionModel
    monkeypatch.setattr(FusionModel, "score", lambda self, x: np.full(len(x), 0.57849, np.float32))
    monkeypatch.setattr(SpectralDetector, "score", lambda self, images: np.full(len(images), 0.33349, np.float32))
    run = invoke("check", folder / "a" / "orig.png", "--device", "cpu", "--mode", "sensitive", "--depth", "full")
    assert run.exit_code == 0, run.output
    import re
    gan = re.findall(r"(?:GAN score|gan_score) (0\.\d{3})", run.output)
    spectral = re.findall(r"spectral score:? (0\.\d{3})", run.output)
    assert len(gan) == 2 and len(set(gan)) == 1, run.output
    assert len(spectral) == 2 and len(set(spectral)) == 1, run.output
    # the operating point is said once, on its own line; the verdict's reason only names the mode
    assert run.output.count("of real natural photos") == 1
    assert "operating point: sensitive mode (flags <= 1% of real natural photos" in run.output
    assert "(sensitive mode)" in run.output


def test_bad_options_are_refused_before_any_work(folder, tmp_path):
    """Exit 2 with one line, and --out is not created."""
    image = folder / "a" / "orig.png"
    cases = [(["--workers", "-3"], "--workers must be a whole number >= 0, not -3"),
             (["--batch-size", "0"], "--batch-size must be a whole number >= 1, not 0"),
             (["--max-pixels", "0"], "--max-pixels must be a whole number >= 1, not 0"),
             (["--mode", "bogus"], "--mode must be one of strict, default, sensitive, not 'bogus'"),
             (["--device", "tpu"], "device must be one of")]
    for options, message in cases:
        out = tmp_path / "never"
        run = invoke("scan", folder, "--out", out, *options)
        assert run.exit_code == 2 and message in run.output, (options, run.output)
        assert len(run.output.strip().splitlines()) == 1, run.output
        assert not out.exists(), options
    run = invoke("check", image, "--mode", "bogus")
    assert run.exit_code == 2 and "--mode must be one of" in run.output
    run = invoke("scan", image, "--out", tmp_path / "never")
    assert run.exit_code == 2 and f"not a folder: {image} is a file" in run.output and "no such folder" not in run.output
    assert not (tmp_path / "never").exists()
    for options in (["--per-source", "0"], ["--folds", "zero"]):
        run = invoke("eval", SAMPLES, "--out", tmp_path / "never", *options)
        assert run.exit_code == 2 and options[0] in run.output and not (tmp_path / "never").exists()


def test_version_and_short_help_everywhere():
    for command in ([], ["scan"], ["check"], ["eval"]):
        run = invoke(*command, "--version")
        assert run.exit_code == 0 and run.output.strip() == f"facecheck {facecheck.__version__}", (command, run.output)
        short, long = invoke(*command, "-h"), invoke(*command, "--help")
        assert short.exit_code == long.exit_code == 0 and short.output == long.output and "Usage" in short.output


def test_api_scan_checks_its_arguments_at_the_call_and_scans_before_returning(folder, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        facecheck.scan(tmp_path / "missing")          # no next(): the call itself refuses
    with pytest.raises(NotADirectoryError, match="is a file"):
        facecheck.scan(folder / "a" / "orig.png")
    with pytest.raises(ValueError, match="workers"):
        facecheck.scan(folder, workers=-3)
    with pytest.raises(ValueError, match="inside the scanned folder"):
        facecheck.scan(folder, out=folder / "out")
    # the scan is done when scan() returns, iterated or not
    out = tmp_path / "out"
    results = facecheck.scan(folder, out=out, workers=0)
    assert (out / "results.jsonl").is_file() and (out / "report.html").is_file()
    assert len(list(results)) == 6
    # without out: a temporary folder, removed once the results are read
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    results = facecheck.scan([folder / "a" / "orig.png", folder / "b" / "copy.jpg"], workers=0)
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    assert [r.cluster_size for r in results] == [2, 2]
    assert not list((tmp_path / "tmp").iterdir())


def test_persistent_index_remembers_earlier_scans(folder, tmp_path):
    index = tmp_path / "known.sqlite"
    first = tmp_path / "first"
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(folder / "a" / "orig.png", one / "x.png")
    list(facecheck.scan(one, out=first, index=index, scan_name="march-takedown", workers=0))
    later = list(facecheck.scan(folder, out=tmp_path / "second", index=index, workers=0))
    by_path = {r.path: r for r in later}
    assert by_path["b/copy.jpg"].seen_before is True
    assert by_path["b/copy.jpg"].seen_in == ["march-takedown:x.png"]
    assert by_path["b/rocket.png"].seen_before is False
    assert facecheck.score_image(folder / "a" / "orig.png", index=index).seen_before is True


def test_rerun_resumes_and_rescans_changed_files(folder, tmp_path):
    out = tmp_path / "out"
    list(facecheck.scan(folder, out=out, workers=0))
    target = folder / "b" / "rocket.png"
    Image.open(SAMPLES / "coffee.jpg").save(target)
    os.utime(target, ns=(1, 1))
    progress = []
    summary = run_scan(walk(folder), out, Settings(workers=0),
                              progress=lambda d, t: progress.append((d, t)), folder=folder)
    # three images kept from the first run; the changed one and the two error rows are scanned again
    assert summary.files == 6 and summary.scanned == 3
    assert progress[-1] == (6, None)                      # a generator of sources: no total known
    results = list(read_results(out))
    assert len(results) == 6 and len(read_jsonl(out / "results.jsonl")) == 6
    row = next(r for r in results if r.path == "b/rocket.png")
    assert row.phash == str(imagehash.phash(Image.open(target)))


def test_api_scores_paths_pil_and_numpy(photo, tmp_path):
    path = tmp_path / "p.png"
    photo.save(path)
    from_path = facecheck.score_image(path)
    from_pil = facecheck.score_image(photo)
    from_array = facecheck.score_image(__import__("numpy").asarray(photo))
    assert from_path.phash == from_pil.phash == from_array.phash
    assert from_path.to_dict()["sha256"] is not None and from_pil.sha256 is None


def wide_help(*command) -> str:
    """A command's -h, with rich's table borders and line wrapping taken out (words stay apart)."""
    run = CliRunner().invoke(app, [*command, "-h"], env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    return run.output


def test_help_shows_flags_bare_and_what_to_install():
    """`pip install 'facecheck[ray]'` lost its [ray] to rich markup; every on/off option read `--json <bool>`;
    eval's --quiet said nothing."""
    for command in ([], ["scan"], ["check"], ["eval"], ["export"]):
        assert "<bool>" not in wide_help(*command), command
    assert "pip install 'facecheck[ray]'" in wide_help("scan")
    quiet = next(line for line in wide_help("eval").splitlines() if "--quiet" in line)
    assert "No progress bar" in quiet, quiet


def test_an_out_that_is_a_file_is_refused_in_one_line(folder, tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("x")
    run = invoke("scan", folder, "--out", blocker)
    assert run.exit_code == 2 and run.output.strip() == f"error: --out {blocker} is a file, not a folder", run.output
    labelled = tmp_path / "labelled" / "real_natural"
    labelled.mkdir(parents=True)
    shutil.copy(SAMPLES / "rocket.jpg", labelled / "rocket.jpg")
    run = invoke("eval", labelled.parent, "--out", blocker, "--device", "cpu")
    assert run.exit_code == 2 and run.output.strip() == f"error: --out {blocker} is a file, not a folder", run.output


def test_workers_beyond_the_cores_are_capped_with_a_note_and_absurd_counts_refused(folder, tmp_path, monkeypatch):
    """64 workers on 2 cores took 30 s for 5 files (each loads its own models); 999999 never started."""
    run = invoke("scan", folder, "--out", tmp_path / "never", "--workers", "999999")
    assert run.exit_code == 2 and "--workers must be at most 1024, not 999999" in run.output
    assert len(run.output.strip().splitlines()) == 1 and not (tmp_path / "never").exists()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    settings = Settings(workers=64, device="cpu")
    assert worker_count(settings) == 2 and worker_count(Settings(workers=1)) == 1
    assert worker_cap_note(settings) == "--workers 64 is more than this machine's 2 cores: using 2"
    assert worker_cap_note(Settings(workers=2)) is None
    started = []

    class Refused(Exception):
        pass

    def pool(self, processes, *args, **kwargs):
        started.append(processes)
        raise Refused   # what was asked for is all this test needs: no process is started
    monkeypatch.setattr(multiprocessing.context.SpawnContext, "Pool", pool)
    with pytest.raises(Refused):
        list(prepared_stream(walk(folder), settings))
    assert started == [2]
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(SAMPLES / "rocket.jpg", one / "rocket.jpg")
    run = invoke("scan", one, "--out", tmp_path / "out", "--workers", "64", "--device", "cpu")
    assert run.exit_code == 0, run.output
    assert run.output.startswith("note: --workers 64 is more than this machine's 2 cores: using 2\n"), run.output


def test_check_reads_standard_input_refuses_urls_and_shows_pdq(tmp_path):
    data = (SAMPLES / "rocket.jpg").read_bytes()
    run = CliRunner().invoke(app, ["check", "-", "--device", "cpu"], input=data)
    assert run.exit_code == 0, run.output
    expected = facecheck.score_image(SAMPLES / "rocket.jpg", device="cpu")
    assert run.output.startswith("<stdin>\n")
    assert f"  pdq: {expected.pdq} (quality {expected.pdq_quality})" in run.output, run.output
    run = CliRunner().invoke(app, ["check", "-", "--json", "--device", "cpu"], input=data)
    assert run.exit_code == 0 and json.loads(run.output)["sha256"] == expected.sha256
    for url in ("https://example.com/avatar.jpg", "http://10.0.0.1/a.png", "HTTPS://EXAMPLE.COM/X"):
        run = invoke("check", url)
        assert run.exit_code == 2 and len(run.output.strip().splitlines()) == 1, run.output
        assert "facecheck works offline and fetches nothing; download the image first" in run.output
