"""What a million-entry PDQ list (the size of a ThreatExchange export) costs a scan and `check`.

    python benchmarks/bench_hashlists.py [--entries 1000000] [--n 300] [--repeat 2] [--indexes] [--json out.json]

1. Builds (once; cached under scratch/bench_hashlists/, git-ignored) a list of --entries PDQ-like
   hashes (exactly 128 of 256 bits set, as every PDQ hash has) as ThreatExchange's CLI writes them,
   `pdq HASH label` a line, with the PDQ hashes of 10 of the scanned files planted in it, 0-20 bits
   away, so the matching is checked as well as timed.
2. Scans the --n avatars of benchmarks/bench_scan.py (400 px JPEGs from ../shared/data) without and
   with the list, alternately, --repeat times each, every run `run_scan` in a fresh subprocess
   (default settings, CPU): wall time, CPU time (main and workers: the figure other jobs on the cores
   change least), peak RSS of the scan's main process and of its largest worker.
   The goal (issue 19, item 10): at most 1.5x the time without a list, at most 300 MB more memory.
3. `facecheck check FILE --json` with and without the list, in a fresh process each: wall time and
   peak RSS.
4. In this process: parsing the list (`hashlists.load_lists`) and the first PDQ lookup (which builds
   the exact faiss index), time and RSS growth.
5. With --indexes: facecheck/index.py's exact and partitioned faiss indexes on the list's codes, with
   300 planted neighbours 10-31 bits from PDQ-like queries: build time, search time, neighbours found
   (why hash lists are searched exactly).

Every line carries the load average: the machine may be shared with other jobs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CACHE = REPO / "scratch" / "bench_hashlists"
PLANTED = 10
ROWS_PER_CHUNK = 50_000


def load_avg() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def build_list(entries: int, planted: list[str], seed: int = 0) -> Path:
    """`pdq HASH label` lines: random 128-bit-weight hashes, with `planted` hashes moved 0-20 bits
    and put at spread-out positions."""
    path = CACHE / f"te_pdq_{entries}_seed{seed}_{'-'.join(h[:8] for h in planted)}.txt"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building a {entries:,}-entry PDQ list in {path} ...", flush=True)
    rng = np.random.default_rng(seed)
    spots = {k * (entries // len(planted)) + 1: h for k, h in enumerate(planted)}
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="ascii") as f:
        for start in range(0, entries, ROWS_PER_CHUNK):
            rows = min(ROWS_PER_CHUNK, entries - start)
            bits = np.argsort(rng.random((rows, 256), dtype=np.float32), axis=1) < 128
            hexes = np.packbits(bits, axis=1).tobytes().hex()
            lines = []
            for i in range(rows):
                h = hexes[64 * i:64 * i + 64]
                if start + i in spots:
                    near = np.unpackbits(np.frombuffer(bytes.fromhex(spots[start + i]), np.uint8)).astype(bool)
                    near[rng.choice(256, int(rng.integers(0, 21)), replace=False)] ^= True
                    h = np.packbits(near).tobytes().hex()
                lines.append(f"pdq {h} te-{start + i:07d}\n")
            f.write("".join(lines))
    tmp.rename(path)
    return path


SCAN = """
import json, resource, sys, time
from pathlib import Path
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
folder, out, lists = Path(sys.argv[1]), Path(sys.argv[2]), tuple(sys.argv[3:])
t = time.perf_counter()
run_scan(list(walk(folder)), out, Settings(device="cpu", known_hashes=lists))
wall = time.perf_counter() - t
rows = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "main_peak_mb": me.ru_maxrss / 1024, "worker_peak_mb": kids.ru_maxrss / 1024,
                  "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                  "files": len(rows), "matched": sum(bool(r["known_matches"]) for r in rows)}))
"""

CHECK = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
run = subprocess.run([sys.executable, "-m", "facecheck", "check", *sys.argv[1:], "--json", "--device", "cpu"],
                     capture_output=True, text=True)
wall = time.perf_counter() - t
row = json.loads(run.stdout)
print(json.dumps({"wall_s": wall, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "matched": len(row["known_matches"] or [])}))
"""


def in_subprocess(code: str, *args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if run.returncode:
        raise SystemExit(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def parse_in_process(list_path: Path, probe: str) -> dict:
    from facecheck.hashing import Hash
    from facecheck.hashlists import load_lists

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
    before = rss_mb()
    t = time.perf_counter()
    lists = load_lists([list_path])
    parsed = time.perf_counter() - t
    after_parse = rss_mb()
    t = time.perf_counter()
    found = lists.match([Hash.from_hex(probe)], None)
    first = time.perf_counter() - t
    t = time.perf_counter()
    lists.match([Hash.from_hex(probe)] * 4, None)
    four = time.perf_counter() - t
    return {"entries": len(lists), "parse_s": parsed, "rss_after_parse_mb": after_parse - before,
            "first_lookup_s": first, "rss_after_index_mb": rss_mb() - before, "lookup_4_probes_s": four,
            "probe_matched": len(found)}


def compare_indexes(list_path: Path, queries: int = 300, seed: int = 1) -> dict:
    """The exact (flat) against the partitioned (IVF) faiss index of facecheck/index.py on the list's
    codes, with `queries` entries replaced by neighbours 10-31 bits from random PDQ-like queries:
    build time, time for 4 probes a query, and how many planted neighbours each finds within 31 bits."""
    from facecheck.hashlists import parse_list
    from facecheck.index import HashIndex
    from facecheck.pdq import MATCH_BITS
    codes = parse_list(list_path.read_bytes(), list_path.name).entries["pdq"].codes.copy()
    rng = np.random.default_rng(seed)
    probes = np.packbits(np.argsort(rng.random((queries, 256), dtype=np.float32), axis=1) < 128, axis=1)
    spots = rng.choice(len(codes), queries, replace=False)
    for q, spot in enumerate(spots):
        near = np.unpackbits(probes[q]).astype(bool)
        near[rng.choice(256, int(rng.integers(10, MATCH_BITS + 1)), replace=False)] ^= True
        codes[spot] = np.packbits(near)
    out = {}
    for name, exact in (("exact", True), ("partitioned", False)):
        t = time.perf_counter()
        index = HashIndex(codes, exact=exact)
        built = time.perf_counter() - t
        t = time.perf_counter()
        hits = index.range_search(np.repeat(probes, 4, axis=0), MATCH_BITS)
        searched = time.perf_counter() - t
        found = sum(int(spots[q]) in set(hits[4 * q][0].tolist()) for q in range(queries))
        out[name] = {"build_s": built, "ms_per_4_probes": searched * 1000 / queries, "found": found, "planted": queries}
        print(f"{name} index: build {built:.1f} s, {out[name]['ms_per_4_probes']:.1f} ms for 4 probes, found "
              f"{found} of {queries} planted neighbours (load {load_avg()})", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=300, help="avatars scanned (bench_scan.py's folder)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--indexes", action="store_true", help="also compare the exact and partitioned faiss indexes "
                                                              "on the list (the partitioned one trains for minutes)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from bench_scan import build_folder, files_of
    from facecheck.loading import load_image
    from facecheck.pdq import pdq
    folder = build_folder(args.n)   # None without ../shared/data
    files = files_of(folder) if folder is not None else []
    if not files:
        print("bench_hashlists: no labelled data (../shared/data or $FACECHECK_DATA); nothing to measure. Skipped.")
        return
    planted = [str(pdq(load_image(p).rgb()).hash) for p in files[:: max(1, len(files) // PLANTED)][:PLANTED]]
    list_path = build_list(args.entries, planted)
    size_mb = list_path.stat().st_size / 2**20
    print(f"bench_hashlists: {len(files)} avatars, list of {args.entries:,} PDQ entries ({size_mb:.0f} MB), "
          f"{os.cpu_count()} cores", flush=True)
    record = {"entries": args.entries, "files": len(files), "list_mb": size_mb, "scans": [], "checks": []}

    for k in range(args.repeat):
        for with_list in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                r = in_subprocess(SCAN, folder, Path(tmp) / "out", *([list_path] if with_list else []))
            r.update(with_list=with_list, load=load_avg())
            record["scans"].append(r)
            print(f"scan {'with' if with_list else 'without'} list: {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, main peak "
                  f"{r['main_peak_mb']:.0f} MB, largest worker {r['worker_peak_mb']:.0f} MB, {r['matched']} files "
                  f"matched (load {r['load']})", flush=True)
    for k in range(args.repeat):
        for with_list in (False, True):
            r = in_subprocess(CHECK, files[0], *(["--known-hashes", list_path] if with_list else []))
            r.update(with_list=with_list, load=load_avg())
            record["checks"].append(r)
            print(f"check {'with' if with_list else 'without'} list: {r['wall_s']:.2f} s, peak {r['peak_mb']:.0f} MB, "
                  f"{r['matched']} matches (load {r['load']})", flush=True)
    p = parse_in_process(list_path, planted[0])
    record["parse"] = p
    print(f"in process: parse {p['parse_s']:.2f} s (+{p['rss_after_parse_mb']:.0f} MB RSS), first lookup with the "
          f"index build {p['first_lookup_s']:.2f} s (+{p['rss_after_index_mb']:.0f} MB in all), 4 probes "
          f"{p['lookup_4_probes_s'] * 1000:.1f} ms (load {load_avg()})")

    if args.indexes:
        record["indexes"] = compare_indexes(list_path)

    def best(rows, key, flag):
        return min(r[key] for r in rows if r["with_list"] == flag)
    scans = record["scans"]
    ratio = best(scans, "wall_s", True) / best(scans, "wall_s", False)
    cpu_ratio = best(scans, "cpu_s", True) / best(scans, "cpu_s", False)
    extra = max(best(scans, "main_peak_mb", True) - best(scans, "main_peak_mb", False),
                best(scans, "worker_peak_mb", True) - best(scans, "worker_peak_mb", False))
    record.update(time_ratio=ratio, cpu_ratio=cpu_ratio, extra_peak_mb=extra)
    print(f"best of {args.repeat}: scan time with / without the list {ratio:.2f}x (goal <= 1.5), CPU time "
          f"{cpu_ratio:.2f}x (what other jobs on the cores change least), extra peak RSS per process "
          f"{extra:.0f} MB (goal <= 300)")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
