"""The persistent index (--index): scans never replace each other's entries, and a damaged,
read-only or locked index is refused before any work, or, when it fails only at the end, the
results and report are still written and the scan says the index was not updated."""
import shutil
import sqlite3
import subprocess
import sys
import warnings

import pytest

import facecheck
from facecheck import known
from facecheck.pipeline import run as run_module
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings

from conftest import SAMPLES


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "facecheck", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def one_photo_folder(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(SAMPLES / "account_a.png", folder / "x.png")
    return folder


def entries(index):
    with sqlite3.connect(index) as db:
        return sorted(db.execute("SELECT scan, path FROM avatars"))


def test_default_names_are_unique_to_the_scanned_folder(tmp_path):
    """Two folders scanned with the same --out (as every scan with the default --out is): the second
    sees the first's byte-identical copy, and the first's entries stay."""
    index, out = tmp_path / "known.sqlite", tmp_path / "facecheck-out"
    one, two = one_photo_folder(tmp_path, "one"), one_photo_folder(tmp_path, "two")
    list(facecheck.scan(one, out=out, index=index, workers=0, device="cpu"))
    second = list(facecheck.scan(two, out=out, index=index, workers=0, device="cpu"))
    first_name = f"facecheck-out of {one.resolve()}"
    assert second[0].seen_before is True and second[0].seen_in == [f"{first_name}:x.png"]
    assert entries(index) == [(first_name, "x.png"), (f"facecheck-out of {two.resolve()}", "x.png")]


def test_a_name_taken_by_another_output_folder_is_refused_before_any_work(tmp_path):
    index = tmp_path / "known.sqlite"
    one, two = one_photo_folder(tmp_path, "one"), one_photo_folder(tmp_path, "two")
    list(facecheck.scan(one, out=tmp_path / "a", index=index, scan_name="march", workers=0, device="cpu"))
    list(facecheck.scan(one, out=tmp_path / "a", index=index, scan_name="march", workers=0, device="cpu"))  # a rerun
    with sqlite3.connect(index) as db:
        before = db.execute("SELECT scan, path, sha256, origin FROM avatars").fetchall()
    with pytest.raises(known.IndexUnusable, match="already holds a scan named 'march'"):
        list(facecheck.scan(two, out=tmp_path / "b", index=index, scan_name="march", workers=0, device="cpu"))
    assert not (tmp_path / "b").exists()   # refused before --out is made
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT scan, path, sha256, origin FROM avatars").fetchall() == before
    # and the CLI: exit 2, one line
    run = run_cli("scan", two, "--out", tmp_path / "c", "--index", index, "--name", "march", "--quiet")
    assert run.returncode == 2 and "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_another_scan_entry_is_never_replaced_even_under_its_name(tmp_path):
    """The last guard (KnownAvatars.add), should two output folders race for one name."""
    index = tmp_path / "known.sqlite"
    avatars = known.KnownAvatars(index)
    row = ("x.png", "a" * 64, None, bytes(32), bytes(64 * 64))
    avatars.add("march", "/out/one", [row])
    avatars.add("march", "/out/two", [("x.png", "b" * 64, None, bytes(32), bytes(64 * 64))])
    avatars.add("march", "/out/one", [("x.png", "c" * 64, None, bytes(32), bytes(64 * 64))])   # its own: updated
    assert avatars.db.execute("SELECT sha256, origin FROM avatars").fetchall() == [("c" * 64, "/out/one")]
    avatars.close()


def damaged_index(tmp_path):
    """An index whose header and schema read fine and whose data pages are overwritten."""
    index = tmp_path / "known.sqlite"
    list(facecheck.scan(SAMPLES, out=tmp_path / "first", index=index, workers=0, device="cpu"))
    with sqlite3.connect(index) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(index.read_bytes())
    assert len(data) >= 6 * page
    data[3 * page:5 * page] = bytes([0x5A]) * (2 * page)
    index.write_bytes(bytes(data))
    return index


def test_a_damaged_index_is_refused_before_any_work_and_check_says_so_in_one_line(tmp_path):
    index = damaged_index(tmp_path)
    run = run_cli("scan", SAMPLES, "--out", tmp_path / "out", "--index", index, "--quiet")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "damaged" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    run = run_cli("check", SAMPLES / "coffee.jpg", "--index", index)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "damaged" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_a_read_only_index_is_refused_before_any_work(tmp_path):
    """Made immutable (chattr +i), which binds root too: permission bits do not (root ignores them)."""
    index = tmp_path / "known.sqlite"
    list(facecheck.scan(one_photo_folder(tmp_path, "one"), out=tmp_path / "first", index=index, workers=0,
                        device="cpu"))
    with sqlite3.connect(index) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if subprocess.run(["chattr", "+i", str(index)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (it needs root and CAP_LINUX_IMMUTABLE)")
    try:
        run = run_cli("scan", SAMPLES, "--out", tmp_path / "out", "--index", index, "--quiet")
    finally:
        subprocess.run(["chattr", "-i", str(index)], check=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "cannot be written" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()   # refused before --out is made


def hold_write_lock(index):
    db = sqlite3.connect(index, timeout=0, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    return db


def test_a_locked_index_is_waited_for_with_a_message_then_refused(tmp_path, monkeypatch):
    index = tmp_path / "known.sqlite"
    folder = one_photo_folder(tmp_path, "one")
    list(facecheck.scan(folder, out=tmp_path / "first", index=index, workers=0, device="cpu"))
    monkeypatch.setattr(known, "LOCK_WAIT_SECONDS", 0.5)
    holder = hold_write_lock(index)
    said = []
    try:
        with pytest.raises(known.IndexUnusable, match="still locked by another process"):
            run_scan(walk(folder), tmp_path / "out", Settings(workers=0, device="cpu",
                            index=index), folder=folder, notice=said.append)
    finally:
        holder.rollback()
        holder.close()
    assert len(said) == 1 and "waiting" in said[0]
    assert not (tmp_path / "out").exists()


def test_a_lock_released_while_waiting_lets_the_scan_go_on(tmp_path, monkeypatch):
    index = tmp_path / "known.sqlite"
    folder = one_photo_folder(tmp_path, "one")
    list(facecheck.scan(folder, out=tmp_path / "first", index=index, workers=0, device="cpu"))
    holder = hold_write_lock(index)
    said = []

    def release_when_told(message):
        said.append(message)
        holder.rollback()

    summary = run_scan(walk(folder), tmp_path / "out", Settings(workers=0, device="cpu",
                              index=index), folder=folder, notice=release_when_told)
    holder.close()
    assert len(said) == 1 and summary.index_error is None and summary.seen_before == 1


def test_an_index_that_fails_at_the_end_still_gives_results_and_report(tmp_path, monkeypatch):
    """Locked after the checks, for longer than the scan waits: the results and report are written,
    the API warns and the CLI exits 1, both saying the index was not updated."""
    index = tmp_path / "known.sqlite"
    folder = one_photo_folder(tmp_path, "one")
    list(facecheck.scan(folder, out=tmp_path / "first", index=index, workers=0, device="cpu"))
    before = entries(index)
    monkeypatch.setattr(known, "LOCK_WAIT_SECONDS", 0.5)
    finish, holders = run_module.finish, []

    def finish_while_locked(*args, **kwargs):   # another process takes the lock once the files are in
        holders.append(hold_write_lock(index))
        try:
            return finish(*args, **kwargs)
        finally:
            holders.pop().close()

    monkeypatch.setattr(run_module, "finish", finish_while_locked)   # the finish that run_scan calls
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = list(facecheck.scan(folder, out=tmp_path / "api", index=index, workers=0, device="cpu"))
    assert [str(w.message) for w in caught if "was not updated" in str(w.message)]
    assert len(rows) == 1 and (tmp_path / "api" / "report.html").is_file()
    assert entries(index) == before

    from typer.testing import CliRunner
    from facecheck.cli import app
    run = CliRunner().invoke(app, ["scan", str(folder), "--out", str(tmp_path / "cli"), "--index", str(index),
                                   "--quiet", "--workers", "0", "--device", "cpu"])
    assert run.exit_code == 1 and "was not updated" in run.output
    assert (tmp_path / "cli" / "results.jsonl").is_file() and (tmp_path / "cli" / "report.html").is_file()
    assert entries(index) == before
