"""Does grouping keep up? What a scan spends once its last file is decoded, and the grouping's memory
as the number of files grows (the scan-speed issue).

    python benchmarks/bench_grouping.py [--photos 400] [--copies 10] [--workers auto]
                                        [--synthetic 100000 1000000] [--json out.json]

1. Reposts: PHOTOS photos of ../shared/data (half aligned faces, half natural photos, fixed seed), each
   posted COPIES times, every copy a random repost (`facecheck.degrade.random_repost`: resize to
   150-400 px, JPEG q60-95, crops, mirror, frames, gamma), built once under scratch/bench_grouping/.
   They are scanned (`run_scan`, in a fresh subprocess) and the summary's phase times are
   printed: the decoding-and-analysis phase, then grouping (reuse groups and results files) and the
   report, which run after the last file is in. Beside them: single-process decode time of the same
   files (`load_image`), the issue's yardstick, and the groups found against the truth.
2. Synthetic hashes: `facecheck.grouping.group_files` on N synthetic files (random 256-bit codes,
   probes and thumbnails generated from each id, a tenth of them planted copies), in a fresh subprocess
   per N: wall time, files per second, and the peak RSS above what the process held before grouping
   (interpreter, libraries and the N codes themselves), so growth with N shows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

CACHE = REPO / "scratch" / "bench_grouping"


def load_avg() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def build_reposts(photos: int, copies: int, seed: int = 5) -> Path | None:
    """photos x copies repost files under <photo>/<copy>.jpg; cached."""
    from facecheck.evaluation import degrade
    from facecheck.evaluation.dataset import data_root, read_manifest
    if data_root() is None:
        return None
    folder = CACHE / f"reposts_{photos}x{copies}_seed{seed}"
    if (folder / ".complete").is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(seed)
    samples = read_manifest()
    aligned = [s for s in samples if s.label in ("stylegan", "real_ffhq")]
    natural = [s for s in samples if s.label == "real_natural"]
    picked = ([aligned[i] for i in rng.choice(len(aligned), photos // 2, replace=False)]
              + [natural[i] for i in rng.choice(len(natural), photos - photos // 2, replace=False)])
    print(f"building {photos} x {copies} reposts in {folder} ...", flush=True)
    for k, s in enumerate(picked):
        original = Image.open(s.path).convert("RGB")
        sub = folder / f"photo{k:05d}"
        sub.mkdir(parents=True)
        for c in range(copies):
            degrade.random_repost(original, rng).convert("RGB").save(sub / f"copy{c:02d}.jpg", quality=95)
    (folder / ".complete").write_text(f"{photos} {copies}\n")
    return folder


SCAN_CHILD = r"""
import json, resource, sys, tempfile, time
from collections import Counter
from pathlib import Path
sys.path.insert(0, {repo!r})
from facecheck.pipeline.prepare import MODEL_MIN_SIDE
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
from facecheck.writers import read_results
folder = Path({folder!r})
with tempfile.TemporaryDirectory(prefix="bench-grouping-") as tmp:
    start = time.perf_counter()
    summary = run_scan(list(walk(folder)), Path(tmp) / "out", Settings(workers={workers!r}))
    wall = time.perf_counter() - start
    clusters = [(r.path.split("/")[0], r.cluster) for r in read_results(Path(tmp) / "out")]
photos_split = len({{c for p, c in clusters if c is not None and len({{q for q, d in clusters if d == c}}) > 1}})
by_photo = {{}}
for photo, cluster in clusters:
    by_photo.setdefault(photo, set()).add(cluster)
whole = sum(1 for cs in by_photo.values() if len(cs) == 1 and None not in cs)
me = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT " + json.dumps(dict(wall=wall, files=summary.files, groups=summary.groups,
      grouped_files=summary.grouped_files, analysis_s=summary.analysis_seconds, grouping_s=summary.grouping_seconds,
      report_s=summary.report_seconds, photos_in_one_group=whole, mixed_groups=photos_split,
      rss_main_mb=me.ru_maxrss / 1024)))
"""


class SyntheticFiles:
    """N files' worth of what grouping reads, generated from each id (nothing stored per file but the
    codes): random 256-bit codes, and every `copies_every`-th file a planted copy of the file before
    it (its code with 6 bits flipped, its thumbnail with a little noise). Probes: the file's own code
    and 37 codes with 40 of its bits flipped (as crop variants lie near the plain hash)."""

    PROBES = 38

    def __init__(self, n: int, copies_every: int = 10, seed: int = 0):
        self.n, self.copies_every, self.seed = n, copies_every, seed
        rng = np.random.default_rng(seed)
        codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        copy = np.arange(n) % copies_every == copies_every - 1
        copy[0] = False
        rows = np.flatnonzero(copy)
        codes[rows] = codes[rows - 1]
        for _ in range(6):   # flip a random bit, six times
            np.bitwise_xor.at(codes, (rows, rng.integers(0, 32, len(rows))),
                              (1 << rng.integers(0, 8, len(rows))).astype(np.uint8))
        self._codes = codes
        self.copy = copy
        self.planted_pairs = int(copy.sum())

    def codes(self) -> np.ndarray:
        return self._codes

    def ids(self) -> np.ndarray:
        return np.arange(self.n, dtype=np.int64)

    def thumbnail(self, file_id: int) -> np.ndarray:
        original = file_id - 1 if self.copy[file_id] else file_id
        thumb = np.random.default_rng((self.seed, original)).integers(0, 256, (64, 64)).astype(np.int16)
        if original != file_id:
            thumb += np.random.default_rng((self.seed, file_id, 1)).integers(-4, 5, (64, 64)).astype(np.int16)
        return np.clip(thumb, 0, 255).astype(np.uint8)

    def chunks(self, size: int = 512):
        for start in range(0, self.n, size):
            ids = np.arange(start, min(start + size, self.n), dtype=np.int64)
            rng = np.random.default_rng((self.seed, start, 2))
            noise = np.zeros((len(ids), self.PROBES, 256), bool)
            for k in range(1, self.PROBES):
                noise[np.arange(len(ids))[:, None], k, rng.integers(0, 256, (len(ids), 40))] = True
            probes = self._codes[ids][:, None, :] ^ np.packbits(noise, axis=2)
            yield ids, probes, np.stack([self.thumbnail(int(i)) for i in ids])


SYNTHETIC_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
sys.path.insert(0, {repo!r} + "/benchmarks")
from facecheck import grouping
from bench_grouping import SyntheticFiles
n = {n!r}
source = SyntheticFiles(n, copies_every=10, seed=1)
def rss_kb():   # current resident size (ru_maxrss is the peak so far)
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024
base = max(rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
start = time.perf_counter()
groups = grouping.group_files(source.ids(), source.codes(), source.chunks(), source.thumbnail)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps(dict(n=n, wall=wall, files_per_s=n / wall, groups=groups.count(),
      grouped=int(groups.grouped().sum()), rss_base_mb=base / 1024, rss_peak_mb=peak / 1024,
      rss_growth_mb=(peak - base) / 1024, planted=source.planted_pairs)))
"""


def run_child(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def decode_seconds(files: list[Path]) -> float:
    from facecheck.pipeline.prepare import MODEL_MIN_SIDE
    from facecheck.loading import load_image
    for p in files:   # warm the page cache
        load_image(p, min_side=MODEL_MIN_SIDE)
    start = time.perf_counter()
    for p in files:
        load_image(p, min_side=MODEL_MIN_SIDE)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=400)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--workers", default="auto", help="scan decode workers (auto: one per core)")
    ap.add_argument("--synthetic", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))   # here, not at import: tests import SyntheticFiles from this module
    report: dict = {"cpus": os.cpu_count()}
    workers = None if args.workers == "auto" else int(args.workers)

    if not args.skip_scan:
        folder = build_reposts(args.photos, args.copies)
        if folder is None:
            print("bench_grouping: no labelled data (../shared/data or $FACECHECK_DATA); scan part skipped.")
        else:
            from facecheck.pipeline.walk import walk
            files = [p for p, _ in walk(folder)]
            decode = decode_seconds(files)
            load_before = load_avg()
            r = run_child(SCAN_CHILD.format(repo=str(REPO), folder=str(folder), workers=workers))
            r.update(decode_s=decode, load_before=load_before, load_after=load_avg())
            after = r["grouping_s"] + r["report_s"]
            r["after_over_analysis"] = after / r["analysis_s"]
            r["after_over_decode"] = after / decode
            report["scan"] = r
            print(f"1. scan of {r['files']} reposts ({args.photos} photos x {args.copies}), {os.cpu_count()} cores, "
                  f"load {load_before} -> {r['load_after']}")
            print(f"   decode + analysis {r['analysis_s']:.1f} s; after the last file: grouping {r['grouping_s']:.2f} s, "
                  f"report {r['report_s']:.2f} s")
            print(f"   after / decode-and-analysis phase: {100 * r['after_over_analysis']:.1f}%   "
                  f"after / single-process decode ({decode:.1f} s): {100 * r['after_over_decode']:.0f}%")
            print(f"   groups {r['groups']} ({r['grouped_files']} files); photos whose copies all fell in one group "
                  f"{r['photos_in_one_group']}/{args.photos}; RSS main {r['rss_main_mb']:.0f} MB\n")

    if args.synthetic:
        print("2. grouping alone on synthetic hashes (fresh subprocess per N)")
        print(f"   {'files':>9s} {'wall s':>8s} {'files/s':>9s} {'RSS base MB':>11s} {'peak MB':>8s} {'growth MB':>9s} "
              f"{'groups':>7s}  load")
        report["synthetic"] = []
        for n in args.synthetic:
            r = run_child(SYNTHETIC_CHILD.format(repo=str(REPO), n=n))
            r["load"] = load_avg()
            report["synthetic"].append(r)
            print(f"   {n:9d} {r['wall']:8.1f} {r['files_per_s']:9.0f} {r['rss_base_mb']:11.0f} {r['rss_peak_mb']:8.0f} "
                  f"{r['rss_growth_mb']:9.0f} {r['groups']:7d}  {r['load']}", flush=True)
        print()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
