"""What a scan does with the folder's entries: links, odd files and names, reruns over changed or
failed files, undecodable bytes and decoder warnings. Each entry gets a row; nothing outside FOLDER
is read unless asked."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

import facecheck
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings

from conftest import SAMPLES


def rows_of(out) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "results.jsonl").read_text(encoding="utf-8").splitlines())}


@pytest.fixture
def linked(tmp_path):
    """FOLDER with links to a photo and a folder outside it, a link inside it, a dangling link,
    a FIFO, and a link into the scan's --out folder."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    (outside / "sub" / "other.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    (out / "old.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (folder / "a.png").write_bytes((SAMPLES / "account_a.png").read_bytes())
    (folder / "to_file.jpg").symlink_to(outside / "secret.jpg")
    (folder / "to_dir").symlink_to(outside / "sub")
    (folder / "inside.png").symlink_to(folder / "a.png")
    (folder / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "to_out").symlink_to(out)
    os.mkfifo(folder / "pipe.jpg")
    return folder, out


def test_links_leaving_the_folder_are_not_read_but_get_rows(linked):
    folder, out = linked
    list(facecheck.scan(folder, out=out, workers=0, device="cpu"))
    rows = rows_of(out)
    assert set(rows) == {"a.png", "to_file.jpg", "to_dir", "inside.png", "dangling.jpg", "to_out", "pipe.jpg"}
    for path in ("to_file.jpg", "to_dir"):
        assert "outside the scanned folder: not followed" in rows[path]["error"] and rows[path]["sha256"] is None
    assert "output folder" in rows["to_out"]["error"]
    assert "dangling" in rows["dangling.jpg"]["error"]
    assert "a FIFO" in rows["pipe.jpg"]["error"]
    assert rows["inside.png"]["error"] is None and rows["inside.png"]["sha256"] == rows["a.png"]["sha256"]
    report = (out / "report.html").read_text(encoding="utf-8")
    secret = hashlib.sha256((SAMPLES / "rocket.jpg").read_bytes()).hexdigest()
    assert secret not in (out / "results.jsonl").read_text() and "old.jpg" not in report


def test_follow_links_reads_outside_links_but_never_the_output(linked):
    folder, out = linked
    run = subprocess.run([sys.executable, "-m", "facecheck", "scan", str(folder), "--out", str(out), "--follow-links",
                          "--quiet", "--workers", "0", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = rows_of(out)
    assert rows["to_file.jpg"]["error"] is None
    assert rows["to_dir/other.jpg"]["error"] is None
    assert "output folder" in rows["to_out"]["error"]
    assert not any(p.startswith("to_out/") for p in rows)


def test_a_file_name_that_is_not_utf8_gets_its_row(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"caf\xe9_\xff.jpg")
    with open(raw, "wb") as f:
        f.write((SAMPLES / "rocket.jpg").read_bytes())
    (folder / "ok.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    run = subprocess.run([sys.executable, "-m", "facecheck", "scan", str(folder), "--out", str(tmp_path / "out"),
                          "--quiet", "--workers", "0", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = rows_of(tmp_path / "out")
    assert set(rows) == {"caf\\xe9_\\xff.jpg", "ok.jpg"}
    assert rows["caf\\xe9_\\xff.jpg"]["error"] is None and rows["caf\\xe9_\\xff.jpg"]["phash"]
    # a rerun finds the same row again instead of scanning it anew
    summary = run_scan(walk(folder), tmp_path / "out", Settings(workers=0, device="cpu"))
    assert (summary.files, summary.scanned) == (2, 0)


def test_rerun_retries_failed_files_and_notices_changed_bytes(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    photo = folder / "photo.jpg"
    photo.write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not yet an image")
    first = run_scan(walk(folder), out, Settings(workers=0, device="cpu"))
    assert first.scanned == 2 and first.errors == 1
    before = rows_of(out)

    # the failed file is fixed (here: its bytes replaced); the photo's bytes change while its size
    # and modification time are put back as they were
    (folder / "broken.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    st = photo.stat()
    data = bytearray(photo.read_bytes())
    data[len(data) // 2] ^= 0xFF
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert photo.stat().st_size == st.st_size and photo.stat().st_mtime_ns == st.st_mtime_ns

    second = run_scan(walk(folder), out, Settings(workers=0, device="cpu"))
    after = rows_of(out)
    assert second.scanned == 2 and second.errors == 0
    assert after["broken.jpg"]["error"] is None
    assert after["photo.jpg"]["sha256"] == hashlib.sha256(bytes(data)).hexdigest() != before["photo.jpg"]["sha256"]

    third = run_scan(walk(folder), out, Settings(workers=0, device="cpu"))
    assert third.scanned == 0   # nothing changed: every row kept


def test_error_rows_keep_the_sha256_of_the_bytes_read(tmp_path):
    result = facecheck.score_image(SAMPLES / "truncated.jpg")
    assert result.error and result.sha256 == hashlib.sha256((SAMPLES / "truncated.jpg").read_bytes()).hexdigest()


def test_decoder_warnings_go_into_the_row_not_onto_the_terminal(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tags = Image.Exif()
    tags[0x010E] = "a description of the photo"
    exif = bytearray(tags.tobytes())
    exif[20:24] = (5000).to_bytes(4, "big")   # the tag claims more bytes than the file holds
    with Image.open(SAMPLES / "coffee.jpg") as im:
        im.convert("RGB").save(folder / "odd_exif.jpg", exif=bytes(exif))
    (folder / "ok.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    for workers in ("0", "2"):
        out = tmp_path / f"out{workers}"
        run = subprocess.run([sys.executable, "-m", "facecheck", "scan", str(folder), "--out", str(out), "--quiet",
                              "--workers", workers, "--device", "cpu"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
        rows = rows_of(out)
        assert any("larger than file" in w for w in rows["odd_exif.jpg"]["warnings"])
        assert rows["ok.jpg"]["warnings"] == []
