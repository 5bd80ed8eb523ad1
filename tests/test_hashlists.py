"""Imported hash lists (`--known-hashes`) and `facecheck export --format pdq`."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facecheck.evaluation import degrade
from facecheck.hashlists import parse_list
from facecheck.pdq import pdq

from conftest import SAMPLES


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facecheck", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def rows_of(out) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "results.jsonl").read_text(encoding="utf-8").splitlines())}


def test_list_with_transformed_copies_among_aligned_face_distractors(shared_data, tmp_path):
    from facecheck.evaluation.dataset import read_manifest
    faces = sorted((s for s in read_manifest() if s.label in ("stylegan", "real_ffhq")),
                   key=lambda s: hashlib.sha256(s.path.name.encode()).hexdigest())[:60]
    listed, distractors = faces[:20], faces[20:]
    folder = tmp_path / "in"
    folder.mkdir()
    lines = ["pdq,label"]
    reposts = [lambda im: degrade.jpeg(degrade.resize_to(im, 150), 70), degrade.mirror,
               lambda im: degrade.add_border(degrade.resize_to(im, 300), 12 / 300),
               lambda im: degrade.jpeg(degrade.resize_to(im, 256), 80),
               lambda im: degrade.brightness_gamma(im, gamma=0.8)]
    for k, s in enumerate(listed):
        with Image.open(s.path) as im:
            original = im.convert("RGB")
        lines.append(f"{pdq(np.asarray(original)).hash},network-{k}")
        reposts[k % len(reposts)](original).save(folder / f"copy_{k:02d}.png")
    for k, s in enumerate(distractors):
        with Image.open(s.path) as im:
            degrade.jpeg(im.convert("RGB"), 85).save(folder / f"other_{k:02d}.jpg")
    (tmp_path / "shared.csv").write_text("\n".join(lines) + "\n")
    run = cli("scan", folder, "--out", tmp_path / "out", "--known-hashes", tmp_path / "shared.csv", "--quiet",
              "--device", "cpu")
    assert run.returncode == 0, run.stderr
    rows = rows_of(tmp_path / "out")
    for k in range(20):
        matches = rows[f"copy_{k:02d}.png"]["known_matches"]
        assert [m["label"] for m in matches] == [f"network-{k}"], (k, matches)
        assert any("network-" in r for r in rows[f"copy_{k:02d}.png"]["reasons"])
    assert all(rows[f"other_{k:02d}.jpg"]["known_matches"] == [] for k in range(len(distractors)))
    assert "network-0" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_export_then_match_round_trip_and_phash_lists(tmp_path):
    first = tmp_path / "first"
    assert cli("scan", SAMPLES, "--out", first, "--quiet", "--device", "cpu").returncode == 0
    exported = tmp_path / "found.csv"
    run = cli("export", first, "--format", "pdq", "--to", exported)
    assert run.returncode == 0, run.stderr
    entries = parse_list(exported.read_bytes(), "found.csv").rows()
    group = {p for p, r in rows_of(first).items() if r["cluster"] is not None}
    assert len(group) >= 2 and len(entries) >= 2
    # a pHash list in plain text, one hash and label a line, beside the PDQ list
    rocket = rows_of(first)["rocket.jpg"]
    (tmp_path / "phash.txt").write_text(f"# shared by another team\n{rocket['phash']}\trocket launch\n")
    second = tmp_path / "second"
    run = cli("scan", SAMPLES, "--out", second, "--quiet", "--device", "cpu", "--known-hashes", exported,
              "--known-hashes", tmp_path / "phash.txt")
    assert run.returncode == 0, run.stderr
    rows = rows_of(second)
    for path in group:
        assert any(m["list"] == "found.csv" for m in rows[path]["known_matches"]), path
    assert [m["label"] for m in rows["rocket.jpg"]["known_matches"]] == ["rocket launch"]
    assert rows["coffee.jpg"]["known_matches"] == []


def test_a_bad_list_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("ffff\n")
    out = tmp_path / "out"
    run = cli("scan", SAMPLES, "--out", out, "--known-hashes", bad)
    assert run.returncode == 2 and "bad.txt, line 1" in run.stderr and not out.exists()
    run = cli("check", SAMPLES / "rocket.jpg", "--known-hashes", tmp_path / "missing.csv")
    assert run.returncode == 2 and "missing.csv" in run.stderr


def test_headers_and_separators():
    pdq_hex, phash_hex = "0f" * 32, "a1" * 8   # 128 bits set, as every PDQ hash has
    assert parse_list(f"Hash,Label\n{pdq_hex},net A\n", "x").rows() == [("x", "net A", "pdq", pdq_hex, None)]
    assert sorted(parse_list(f"{phash_hex};two words\n\n# note\n{pdq_hex}\n", "y").rows()) == [
        ("y", "", "pdq", pdq_hex, None), ("y", "two words", "phash", phash_hex, None)]
    assert parse_list(f'label,pdq\n"net, B",{pdq_hex}\n', "w").rows() == [("w", "net, B", "pdq", pdq_hex, None)]
    with pytest.raises(ValueError, match="line 2"):
        parse_list(f"pdq\n{pdq_hex[:-1]}\n", "z")


def test_the_persistent_index_keeps_pdq_beside_dct256(tmp_path):
    import sqlite3
    index = tmp_path / "known.sqlite"
    assert cli("scan", SAMPLES, "--out", tmp_path / "out", "--index", index, "--quiet", "--device", "cpu").returncode == 0
    rows = rows_of(tmp_path / "out")
    with sqlite3.connect(index) as db:
        stored = dict(db.execute("SELECT path, pdq FROM avatars").fetchall())
    decoded = {p: r["pdq"] for p, r in rows.items() if r["error"] is None}
    assert stored == decoded and all(len(h) == 64 for h in stored.values())


# ------------------------------------------------------------------ formats other tools write

def prepared_with(list_path, image=SAMPLES / "rocket.jpg"):
    """The row `scan` gives `image` with `list_path` as --known-hashes (no models run)."""
    from facecheck.pipeline.analyze import match_known_hashes
    from facecheck.pipeline.prepare import prepare
    from facecheck.settings import Settings
    prepared = prepare(image, image.name, Settings(known_hashes=(str(list_path),)))
    match_known_hashes(prepared.result, prepared.evidence, (str(list_path),))
    return prepared.result


@pytest.fixture(scope="module")
def rocket():
    from facecheck.pipeline.prepare import prepare
    from facecheck.settings import Settings
    return prepare(SAMPLES / "rocket.jpg", "rocket.jpg", Settings()).result


def unrelated_pdq(n: int, seed: int = 0) -> list[str]:
    """PDQ-like hashes (128 of 256 bits set) of no image here."""
    rng = np.random.default_rng(seed)
    bits = np.argsort(rng.random((n, 256)), axis=1) < 128
    return [h.tobytes().hex() for h in np.packbits(bits, axis=1)]


def test_threatexchange_cli_lines(tmp_path, rocket):
    listed = tmp_path / "te.txt"
    listed.write_text("".join(f"pdq {h}\n" for h in unrelated_pdq(5)) + f"pdq {rocket.pdq} launch-7\n")
    assert [(m["label"], m["kind"], m["distance"]) for m in prepared_with(listed).known_matches] == [
        ("launch-7", "pdq", 0)]


@pytest.mark.parametrize("header", ["", "hash,quality,file\n"])
def test_pdq_photo_hasher_csv_quality_is_not_glued_to_the_label(tmp_path, rocket, header):
    listed = tmp_path / "hasher.csv"
    listed.write_text(header + f"{unrelated_pdq(1)[0]},100,/data/a.jpg\n{rocket.pdq},87,/data/rocket.jpg\n")
    [match] = prepared_with(listed).known_matches
    assert (match["label"], match["quality"], match["kind"]) == ("/data/rocket.jpg", 87, "pdq")


def test_a_sha256_list_is_matched_against_the_files_bytes_not_read_as_pdq(tmp_path, rocket):
    from facecheck.hashlists import load_lists
    rng = np.random.default_rng(3)
    digests = [hashlib.sha256(rng.bytes(64)).hexdigest() for _ in range(30)] + [rocket.sha256]
    listed = tmp_path / "known_files.txt"
    listed.write_text("".join(f"{d} file-{k}\n" for k, d in enumerate(digests)))
    assert [(m["kind"], m["label"], m["hash"]) for m in prepared_with(listed).known_matches] == [
        ("sha256", "file-30", rocket.sha256)]
    assert prepared_with(listed, SAMPLES / "coffee.jpg").known_matches == []
    # named as such, even a single digest is read as SHA-256
    (tmp_path / "one.csv").write_text(f"sha256,label\n{rocket.sha256},x\n")
    assert [m["kind"] for m in prepared_with(tmp_path / "one.csv").known_matches] == ["sha256"]
    # a mix that is neither is refused, naming both readings
    (tmp_path / "mixed.txt").write_text("\n".join(digests[:10] + unrelated_pdq(10)) + "\n")
    with pytest.raises(ValueError, match="PDQ or SHA-256"):
        load_lists([tmp_path / "mixed.txt"])


def test_pdq_hashes_have_128_bits_set_which_is_how_sha256_lists_are_told_apart(rocket):
    from facecheck.hashlists import bit_counts
    from facecheck.loading import LoadError, load_image
    hashes = []
    for path in sorted(SAMPLES.iterdir()):
        try:
            hashes.append(pdq(load_image(path).rgb()).hash)
        except LoadError:
            pass   # the samples' broken files
    assert len(hashes) >= 6
    assert bit_counts(np.stack([np.frombuffer(h.packed(), np.uint8) for h in hashes])).tolist() == [128] * len(hashes)


def test_an_empty_file_and_a_header_only_csv_are_treated_alike(tmp_path):
    from facecheck.hashlists import load_lists
    messages = []
    for name, text in (("empty.csv", ""), ("header.csv", "pdq,label\n"), ("blank.txt", "\n# nothing\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError) as refused:
            load_lists([tmp_path / name])
        messages.append(str(refused.value).replace(name, "LIST"))
    assert len(set(messages)) == 1 and "no hashes" in messages[0]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_lists_with_a_byte_order_mark(tmp_path, rocket, encoding):
    text = f"pdq,label\n{unrelated_pdq(1)[0]},other\n{rocket.pdq},fusée\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    (tmp_path / "list.csv").write_bytes(data)
    assert [m["label"] for m in prepared_with(tmp_path / "list.csv").known_matches] == ["fusée"]


def test_an_image_given_as_a_list_is_refused_with_a_clear_message(tmp_path):
    out = tmp_path / "out"
    run = cli("scan", SAMPLES, "--out", out, "--known-hashes", SAMPLES / "rocket.jpg")
    assert run.returncode == 2 and not out.exists()
    assert run.stderr.strip().count("\n") == 0 and "rocket.jpg is an image (JPEG), not a hash list" in run.stderr


# ------------------------------------------------------------------ numpy 1.x, big lists

def test_matching_without_numpys_bitwise_count(tmp_path, rocket, monkeypatch):
    """numpy < 2 has no bitwise_count; pyproject allows numpy 1.26 (and .ci/run tests with it)."""
    from facecheck.hashlists import load_lists
    from facecheck.hashing import Hash
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    (tmp_path / "mixed.txt").write_text(f"{rocket.phash} by phash\n{rocket.pdq} by pdq\n")
    found = load_lists([tmp_path / "mixed.txt"]).match([Hash.from_hex(rocket.pdq)], Hash.from_hex(rocket.phash))
    assert sorted((m.kind, m.label, m.distance) for m in found) == [("pdq", "by pdq", 0), ("phash", "by phash", 0)]


def test_a_big_list_is_parsed_without_an_object_per_entry_and_searched_exactly(tmp_path, rocket):
    import tracemalloc
    from facecheck.hashlists import load_lists
    from facecheck.hashing import Hash
    n = 100_000
    others = unrelated_pdq(n, seed=5)
    near = np.unpackbits(np.frombuffer(bytes.fromhex(rocket.pdq), np.uint8)).astype(bool)
    near[np.random.default_rng(1).choice(256, 31, replace=False)] ^= True   # at the threshold, 31 bits
    others[n // 2] = np.packbits(near).tobytes().hex()
    lines = [f"{h} entry-{k}" for k, h in enumerate(others)]
    data = ("\n".join(lines) + "\n").encode()
    (tmp_path / "big.txt").write_bytes(data)
    tracemalloc.start()
    lists = load_lists([tmp_path / "big.txt"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the file's bytes and ~160 B an entry at the peak (packed codes, labels, line offsets), where a
    # Python object per entry took ~590 B
    assert len(lists) == n and peak < len(data) + 300 * n, (peak, len(data))
    found = lists.match([Hash.from_hex(rocket.pdq)], None)
    assert [(m.label, m.distance) for m in found] == [(f"entry-{n // 2}", 31)]


# ------------------------------------------------------------------ export

def finished_scan_of(out, rows):
    """An --out folder as a finished scan leaves it, holding these Results."""
    out.mkdir()
    (out / "results.jsonl").write_text("".join(r.to_json() + "\n" for r in rows), encoding="utf-8")
    return out


def test_export_has_a_quality_column_leaves_weak_hashes_out_and_no_local_paths(tmp_path):
    from facecheck.result import Result
    strong, weak, copied, unflagged = unrelated_pdq(4, seed=9)
    out = finished_scan_of(tmp_path / "run", [
        Result(path="/home/analyst/case-12/gan1.jpg", pdq=strong, pdq_quality=90, verdict="gan", gan_score=0.99),
        Result(path="sub/flat.jpg", pdq=weak, pdq_quality=30, verdict="gan", gan_score=0.97),
        Result(path="C:\\Users\\analyst\\copy.jpg", pdq=copied, pdq_quality=70, verdict="real", cluster=1, cluster_size=2),
        Result(path="plain.jpg", pdq=unflagged, pdq_quality=80, verdict="real")])
    run = cli("export", out, "--format", "pdq", "--to", tmp_path / "found.csv")
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "found.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "pdq,quality,label"
    assert "analyst" not in text and "case-12" not in text
    rows = {h: (label, quality) for _, label, _, h, quality in parse_list(text, "found.csv").rows()}
    assert rows == {strong: ("facecheck: GAN face (gan_score 0.990): gan1.jpg", 90),
                    copied: ("facecheck: reused avatar, group 1 of 2 files: copy.jpg", 70)}
    assert "1 left out" in run.stderr
    run = cli("export", out, "--to", tmp_path / "all.csv", "--min-quality", "0")
    assert run.returncode == 0, run.stderr
    assert {r[3] for r in parse_list((tmp_path / "all.csv").read_bytes(), "all.csv").rows()} == {strong, weak, copied}


def test_export_bad_arguments_are_one_line_and_exit_2(tmp_path):
    from facecheck.result import Result
    out = finished_scan_of(tmp_path / "run", [Result(path="a.jpg", pdq=unrelated_pdq(1)[0], pdq_quality=90,
                                                      verdict="gan", gan_score=0.99)])
    for to in (tmp_path, tmp_path / "missing" / "found.csv"):
        run = cli("export", out, "--to", to)
        assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr, run.stderr
        assert "--to" in run.stderr
    run = cli("export", out, "--min-quality", "101")
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0


def test_export_after_an_interrupted_rerun_says_the_results_are_stale(tmp_path):
    from facecheck.pipeline.run import run_scan
    from facecheck.pipeline.walk import walk
    from facecheck.settings import Settings
    out, settings = tmp_path / "out", Settings(workers=0, device="cpu")
    run_scan(list(walk(SAMPLES)), out, settings, folder=SAMPLES)
    assert cli("export", out, "--to", tmp_path / "first.csv").returncode == 0

    def stop_after_start(done, total):
        if done:
            raise KeyboardInterrupt
    import shutil
    copy = tmp_path / "samples"
    shutil.copytree(SAMPLES, copy)   # same files, new modification times: the rerun reads them again
    with pytest.raises(KeyboardInterrupt):   # a rerun (over changed files) stopped after its first batch
        run_scan(list(walk(copy)), out, Settings(workers=0, device="cpu", batch_size=2),
                        progress=stop_after_start, folder=copy)
    run = cli("export", out, "--to", tmp_path / "second.csv")
    assert run.returncode == 2 and "stale" in run.stderr and not (tmp_path / "second.csv").exists()
    run_scan(list(walk(copy)), out, settings, folder=copy)   # finished: fresh again
    assert cli("export", out, "--to", tmp_path / "third.csv").returncode == 0
