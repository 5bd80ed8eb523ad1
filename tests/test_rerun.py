"""A rerun in the same --out with other settings gives exactly the rows a fresh scan with those settings
gives: kept files keep their expensive signals and are judged again (verdict, reasons, list matches)."""
import json
import shutil

from PIL import Image

from facecheck.pipeline.run import run_scan, signals_key
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings

from conftest import SAMPLES


def rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def scan(folder, out, **options):
    return run_scan(walk(folder), out, Settings(workers=0, device="cpu", **options),
                           folder=folder)


def small_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("account_a.png", "account_c.jpg", "coffee.jpg", "rocket.jpg", "not_an_image.jpg"):
        shutil.copy(SAMPLES / name, folder / name)
    return folder


def test_rerun_with_another_mode_and_a_hash_list_gives_the_rows_of_a_fresh_scan(tmp_path):
    folder = small_folder(tmp_path)
    out = tmp_path / "out"
    first = scan(folder, out)
    assert first.scanned == 5
    first_rows = rows(out)
    listed = next(r for r in rows(out) if r["path"] == "coffee.jpg")
    hash_list = tmp_path / "list.csv"
    hash_list.write_text(f"pdq,label\n{listed['pdq']},planted\n", encoding="utf-8")
    settings = {"mode": "sensitive", "known_hashes": (str(hash_list),)}

    rerun = scan(folder, out, **settings)
    fresh = scan(folder, tmp_path / "fresh", **settings)
    assert rows(out) == rows(tmp_path / "fresh")
    # the four decoded files were judged again, not decoded again; the error row is retried
    assert (rerun.scanned, rerun.rejudged) == (1, 4)
    assert (fresh.scanned, fresh.rejudged) == (5, 0)
    by_path = {r["path"]: r for r in rows(out)}
    assert by_path["coffee.jpg"]["known_matches"][0]["label"] == "planted"
    assert all("(sensitive mode)" in r["reasons"][0] for r in by_path.values() if r["error"] is None)

    back = scan(folder, out)   # and back to the first settings: the first run's rows again
    assert back.rejudged == 4 and rows(out) == first_rows


def test_a_setting_that_changes_the_decoding_decodes_again(tmp_path):
    folder = small_folder(tmp_path)
    out = tmp_path / "out"
    scan(folder, out)
    with Image.open(folder / "rocket.jpg") as im:
        limit = im.width * im.height - 1   # rocket.jpg is now over the limit; the others are smaller
    rerun = scan(folder, out, max_pixels=limit)
    scan(folder, tmp_path / "fresh", max_pixels=limit)
    assert rerun.rejudged == 0 and rerun.scanned == 5
    assert rows(out) == rows(tmp_path / "fresh")
    assert "pixels" in next(r for r in rows(out) if r["path"] == "rocket.jpg")["error"]


def test_signals_are_keyed_by_the_model_files_that_run(monkeypatch):
    """On the CPU the spectral detector runs its int8 twin; FACECHECK_FLOAT32=1 runs the float32 model,
    whose scores differ: a rerun must not keep signals computed by the other one."""
    settings = Settings(device="cpu")
    int8 = signals_key(settings)
    monkeypatch.setenv("FACECHECK_FLOAT32", "1")
    assert signals_key(settings) != int8
    monkeypatch.delenv("FACECHECK_FLOAT32")
    assert signals_key(settings) == int8
    assert signals_key(Settings(device="cpu", max_pixels=1000)) != int8
