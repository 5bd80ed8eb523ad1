"""A scan killed with SIGKILL resumes: one row per file in the end, and finished files are not redone."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from PIL import Image

from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings

from conftest import SAMPLES


def test_kill_9_then_rerun_continues_where_it_stopped(tmp_path):
    folder, out = tmp_path / "avatars", tmp_path / "out"
    folder.mkdir()
    with Image.open(SAMPLES / "account_a.png") as im:
        base = im.convert("RGB")
    for i in range(48):   # distinct files (different sizes), decoded one batch of 4 at a time
        base.resize((120 + 3 * i, 120 + 3 * i)).save(folder / f"{i:02d}.jpg", quality=90)
    cmd = [sys.executable, "-m", "facecheck", "scan", str(folder), "--out", str(out), "--workers", "0",
           "--batch-size", "4", "--quiet", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_before = 0
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if (out / "state.sqlite").exists():
                try:
                    with sqlite3.connect(out / "state.sqlite") as db:
                        done_before = db.execute("SELECT COUNT(*) FROM files WHERE record IS NOT NULL").fetchone()[0]
                except sqlite3.Error:
                    continue
                if done_before >= 8:
                    break
        assert proc.poll() is None, "the scan finished before it could be killed; make the folder bigger"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(out / "state.sqlite") as db:
        kept = db.execute("SELECT COUNT(*) FROM files WHERE record IS NOT NULL").fetchone()[0]
    assert 8 <= kept < 48
    partial = [json.loads(line) for line in (out / "results.partial.jsonl").read_text().splitlines()]
    assert len(partial) >= kept - 4                # rows readable while the scan ran (batches of 4)
    summary = run_scan(list(walk(folder)), out, Settings(workers=0, device="cpu"),
                              folder=folder)
    assert summary.scanned == 48 - kept          # nothing already computed is recomputed
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == [f"{i:02d}.jpg" for i in range(48)]
    assert all(r["error"] is None and r["verdict"] in ("real", "gan", "no_face") for r in rows)
    assert len({r["cluster"] for r in rows}) == 1   # all are the same photo, grouped across both runs
    assert (out / "report.html").is_file()
    assert not (out / "results.partial.jsonl").exists()
