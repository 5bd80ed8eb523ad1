"""Whole-scan throughput against the cost of just decoding the files (the scan-speed issue).

    python benchmarks/bench_scan.py [--n 1000] [--workers 2,1] [--batch-size 32] [--threads auto]
                                    [--device cpu] [--depth cascade,full] [--mix labels|natural] [--side 400]
                                    [--repeat 1] [--json out.json] [--folder DIR]

1. Builds (once; reused afterwards) a folder of N avatars, longer side 400 px, JPEG q85, drawn in turn
   from every label of ../shared/data (fixed seed), under scratch/bench_scan/ (git-ignored); `--mix natural`
   draws them from the real natural photos only, the bulk of a real archive.
2. Decode-only baseline, in this one process: `facecheck.loading.load_image` on every file (as the
   scan's workers call it), and plain PIL open + convert("RGB") for reference. Images per second.
   Beside them, what a rerun spends on each unchanged file: reading and hashing its bytes again.
3. The full scan, `run_scan(list(walk(folder)), fresh_out, Settings(...))`, in a
   fresh subprocess per configuration (engine x depth x workers x batch size x ONNX intra-op threads; `--depth`
   cascade skips the spectral detector where it cannot change the verdict (facecheck.cascade), and the share of
   files that reached it is reported; `--engine
   local,ray` compares the local worker processes with Ray Data on a local cluster, whose start-up is
   included in the wall time): wall time, images per second, ratio to single-process Pillow decode
   (`pil` above, the issue's yardstick; goal <= 6.0, long-run 2.0), the scan's own phases (decoding
   and analysis; then grouping and results; then the report), peak RSS of the scan's
   main process (RUSAGE_SELF) and of its largest child (RUSAGE_CHILDREN: the decode workers), and CPU
   time (user + sys, main and children) per file.
   `--threads` other than `auto` is a benchmark-only override of the Runtime's intra-op thread count
   (it wraps `Runtime` in the scan subprocess, so it reaches the models only where they run there: on
   CUDA; on the CPU each decoding worker runs its models with one thread).
4. Per-stage cost, CPU ms per image (process time, so other jobs on the cores inflate it less than
   wall time), from calling each stage directly on --stage-images files in this process, with the
   ONNX intra-op thread count of --stage-threads (default 1: what each scan worker uses on the CPU):
   load, hashes (`hashing.signatures`), PDQ, YuNet (resize + run + decode), FaceMesh (crops + run, on
   the images YuNet found a face in, cost spread over all images), spectral (`SpectralDetector`),
   backbone (`BackboneDetector`), then the two halves a worker runs: `prepare` (load and every hash)
   and `analyze` (every model, the fusion and the verdict, in batches of WORKER_CHUNK) at each depth.

Every timing line carries the load average: the machine has 2 cores that other jobs may share.
"""
from __future__ import annotations

import argparse
import itertools
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
sys.path.insert(0, str(REPO))

CACHE = REPO / "scratch" / "bench_scan"
SIDE = 400
QUALITY = 85


def load_avg() -> str:
    return f"{os.getloadavg()[0]:.2f}"


MIXES = ("labels", "natural")


def build_folder(n: int, seed: int = 0, mix: str = "labels", side: int = SIDE) -> Path | None:
    """N avatars (longer side `side` px, JPEG q85; smaller sources enlarged, which keeps the cost of large photos but
    not their pixel detail: `--side 2048` measures what a large photo costs) drawn round-robin over the labels (mix "labels"), or from
    the real natural photos only (mix "natural": an archive's bulk, ~99.9% real photos in natural framing,
    which the cascade mostly stops early); cached."""
    from facecheck.evaluation.dataset import data_root, read_manifest
    if data_root() is None:
        return None
    folder = CACHE / (f"avatars_{n}_{side}px_q{QUALITY}_seed{seed}" + ("" if mix == "labels" else f"_{mix}"))
    done = folder / ".complete"
    if done.is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list] = {}
    for s in read_manifest():
        if mix == "labels" or s.label == "real_natural":
            by_label.setdefault(s.label, []).append(s)
    pools = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_label.items())}
    picked, i = [], 0
    while len(picked) < n:
        for label in pools:
            pool = pools[label]
            picked.append((label, pool[i % len(pool)]))   # a small label repeats (as reposts do)
            if len(picked) == n:
                break
        i += 1
    print(f"building {n} avatars ({side} px, q{QUALITY}) in {folder} ...", flush=True)
    for k, (label, s) in enumerate(picked):
        im = Image.open(s.path).convert("RGB")
        scale = side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
        sub = folder / label
        sub.mkdir(exist_ok=True)
        im.save(sub / f"{k:06d}.jpg", quality=QUALITY)
    done.write_text(f"{n}\n")
    return folder


def files_of(folder: Path) -> list[Path]:
    from facecheck.pipeline.walk import walk
    return [p for p, _ in walk(folder)]


def decode_baseline(files: list[Path], repeat: int) -> dict:
    """Best of `repeat` passes (after one warm-up pass that fills the page cache)."""
    from facecheck.pipeline.prepare import MODEL_MIN_SIDE
    from facecheck.loading import file_sha256, load_image

    def facecheck_load():
        for p in files:
            load_image(p, min_side=MODEL_MIN_SIDE)

    def pil_load():
        for p in files:
            with Image.open(p) as im:
                im.convert("RGB")

    def rerun_check():
        # what a rerun costs per unchanged file: its bytes are read and hashed again (scanstate keeps a
        # row only while size, mtime and sha256 all match)
        for p in files:
            file_sha256(p)

    out = {}
    for name, fn in (("load_image", facecheck_load), ("pil", pil_load), ("sha256 rerun", rerun_check)):
        fn()
        best = min(_timed(fn) for _ in range(repeat))
        out[name] = {"seconds": best, "img_per_s": len(files) / best, "load_average": load_avg()}
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from facecheck.pipeline.analyze import Analyzer
from facecheck.pipeline.prepare import MODEL_MIN_SIDE, prepare
from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings, WORKER_CHUNK
threads = {threads!r}
if threads is not None:
    import facecheck.runtime as rt
    _Runtime = rt.Runtime
    class Runtime(_Runtime):
        def __init__(self, device="auto", intra_op_threads=None):
            super().__init__(device, threads if intra_op_threads is None else intra_op_threads)
    rt.Runtime = Runtime
folder = Path({folder!r})
settings = Settings(device={device!r}, workers={workers!r}, batch_size={batch!r}, engine={engine!r}, depth={depth!r})
with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
    start = time.perf_counter()
    summary = run_scan(list(walk(folder)), Path(tmp) / "out", settings)
    wall = time.perf_counter() - start
    depths = [json.loads(line)["depth"] for line in open(Path(tmp) / "out" / "results.jsonl")]
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("RESULT " + json.dumps(dict(wall=wall, files=summary.files, scanned=summary.scanned, errors=summary.errors,
                                  analysis_s=summary.analysis_seconds, grouping_s=summary.grouping_seconds,
                                  report_s=summary.report_seconds, reached_full=depths.count("full") / len(depths),
                                  reached_eyes=(depths.count("full") + depths.count("eyes")) / len(depths),
                                  rss_main_mb=me.ru_maxrss / 1024, rss_child_mb=kids.ru_maxrss / 1024,
                                  cpu_main_s=me.ru_utime + me.ru_stime, cpu_child_s=kids.ru_utime + kids.ru_stime)))
"""


def full_scan(folder: Path, workers, batch: int, threads, device: str, engine: str = "local",
              depth: str = "cascade") -> dict:
    code = CHILD.format(repo=str(REPO), folder=str(folder), workers=workers, batch=batch, threads=threads,
                        device=device, engine=engine, depth=depth)
    load_before = load_avg()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"scan subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    r = json.loads(lines[-1][len("RESULT "):])
    r.update(img_per_s=r["files"] / r["wall"], load_before=load_before, load_after=load_avg(),
             cpu_ms_per_img=(r["cpu_main_s"] + r["cpu_child_s"]) * 1000 / r["files"],
             after_share=(r["grouping_s"] + r["report_s"]) / r["analysis_s"],
             workers=workers, batch_size=batch, threads=threads if threads is not None else "ort default",
             engine=engine, depth=depth)
    return r


def stage_profile(files: list[Path], device: str, threads, count: int, repeat: int) -> dict:
    from facecheck.pipeline.analyze import Analyzer
    from facecheck.pipeline.prepare import MODEL_MIN_SIDE, prepare
    from facecheck.settings import WORKER_CHUNK, Settings
    from facecheck.backbone import BackboneDetector
    from facecheck.cascade import DEPTHS
    from facecheck.faces import FaceLocator, dominant, frame_from_detection
    from facecheck.hashing import signatures
    from facecheck.loading import load_image
    from facecheck.pdq import pdq
    from facecheck.runtime import Runtime
    from facecheck.spectrum import SpectralDetector

    files = files[::max(1, len(files) // count)][:count]   # spread over the labels
    n = len(files)
    runtime = Runtime(device, threads)
    locator = FaceLocator(runtime)
    detector, mesh = locator.detector, locator.mesh
    loaded = [load_image(p, min_side=MODEL_MIN_SIDE) for p in files]
    images = [lo.rgb() for lo in loaded]
    # warm-up: session creation and first-run allocations
    locator.locate(images[:4])
    spectral, backbone = SpectralDetector(runtime), BackboneDetector(runtime)
    spectral.score(images[:4])
    backbone.score(images[:4])
    settings = Settings(device=device, workers=0)
    analyzers = {depth: Analyzer(Settings(device=device, workers=0, depth=depth), intra_op_threads=threads)
                 for depth in DEPTHS}
    for analyzer in analyzers.values():
        analyzer.analyze([prepare(p, p.name, settings) for p in files[:4]])   # warm-up
    reached = {}

    def analyze(depth):
        prepared = [prepare(p, p.name, settings) for p in files]
        start = time.process_time()
        for i in range(0, len(prepared), WORKER_CHUNK):
            analyzers[depth].analyze(prepared[i:i + WORKER_CHUNK])
        reached[depth] = (sum(item.result.depth in ("eyes", "full") for item in prepared) / len(prepared),
                          sum(item.result.depth == "full" for item in prepared) / len(prepared))
        return time.process_time() - start

    def yunet():
        return detector.detect(images)

    found = yunet()
    picked = [(i, rows[dominant(rows)]) for i, rows in enumerate(found) if len(rows)]
    todo = [images[i] for i, _ in picked]
    frames = [frame_from_detection(row) for _, row in picked]
    batches = [images[i:i + WORKER_CHUNK] for i in range(0, n, WORKER_CHUNK)]
    stages = {
        "load": lambda: [load_image(p, min_side=MODEL_MIN_SIDE) for p in files],
        "hashes": lambda: [signatures([lo.image]) for lo in loaded],   # one image per call, as the workers do
        "pdq": lambda: [pdq(im) for im in images],
        "yunet": yunet,
        "facemesh": lambda: mesh.landmarks(todo, frames),
        "locate (yunet+facemesh+post)": lambda: [locator.locate(b) for b in batches],
        "spectral": lambda: [spectral.score(b) for b in batches],
        "backbone": lambda: [backbone.score(b) for b in batches],
        "prepare (load + hashes + pdq)": lambda: [prepare(p, p.name, settings) for p in files],
    }
    out = {"images": n, "faces": len(picked), "threads": threads if threads is not None else "ort default",
           "load_average": load_avg()}
    for name, fn in stages.items():
        out[name] = min(_cpu_timed(fn) for _ in range(repeat)) * 1000 / n
    for depth in DEPTHS:
        out[f"analyze, depth {depth}"] = min(analyze(depth) for _ in range(repeat)) * 1000 / n
    out["share reaching FaceMesh (cascade)"], out["share reaching spectral (cascade)"] = reached["cascade"]
    return out


def _cpu_timed(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def parse_list(text: str, cast):
    return [None if v in ("auto", "none", "None") else cast(v) for v in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="avatars in the test folder (default 1000)")
    ap.add_argument("--workers", default="auto", help="comma list of decode worker counts; auto = engine default")
    ap.add_argument("--batch-size", default="32", help="comma list of engine batch sizes (default 32)")
    ap.add_argument("--threads", default="auto",
                    help="comma list of ONNX intra-op thread counts; auto = what the engine does today")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--engine", default="local", help="comma list of scan engines: local, ray (default local)")
    ap.add_argument("--depth", default="cascade,full", help="comma list of scan depths (facecheck.cascade)")
    ap.add_argument("--mix", default="labels", choices=MIXES,
                    help="labels: round-robin over the labels (default); natural: real natural photos only")
    ap.add_argument("--side", type=int, default=SIDE,
                    help=f"longer side of the test avatars (default {SIDE}; e.g. 2048 for large photos, see facecheck.pyramid)")
    ap.add_argument("--repeat", type=int, default=1, help="full-scan runs per configuration (best is kept)")
    ap.add_argument("--stage-images", type=int, default=64, help="files for the per-stage profile (default 64)")
    ap.add_argument("--stage-threads", default="1",
                    help="comma list of ONNX intra-op threads for the stage profile (default 1, as a scan worker)")
    ap.add_argument("--skip-scan", action="store_true", help="only the baseline and the stage profile")
    ap.add_argument("--skip-stages", action="store_true")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--folder", type=Path,
                    help="measure the images already in this folder (one built here and carried to a machine without "
                         "../shared/data, or an archive of your own) instead of building one; --n, --mix, --side unused")
    args = ap.parse_args()

    folder = args.folder if args.folder else build_folder(args.n, mix=args.mix, side=args.side)
    if folder is None:
        print("bench_scan: no labelled data (../shared/data or $FACECHECK_DATA); nothing to measure. Skipped.")
        return
    files = files_of(folder)
    worker_list = parse_list(args.workers, int)
    batch_list = parse_list(args.batch_size, int)
    thread_list = parse_list(args.threads, int)
    mix = "folder" if args.folder else args.mix
    report = {"n": len(files), "folder": str(folder), "cpus": os.cpu_count(), "device": args.device, "mix": mix,
              "side": args.side}
    print(f"bench_scan: {len(files)} avatars ({mix}), {args.side} px JPEG q{QUALITY}, {os.cpu_count()} cores, "
          f"load average {load_avg()} at start\n")

    base = decode_baseline(files, max(2, args.repeat))
    report["decode"] = base
    ref = base["pil"]["img_per_s"]
    print("1. decode only, one process (best of passes, page cache warm)")
    for name, r in base.items():
        print(f"   {name:12s} {r['img_per_s']:7.1f} img/s  {r['seconds'] * 1000 / len(files):6.2f} ms/img  (load {r['load_average']})")
    print()

    if not args.skip_scan:
        print(f"2. full scan (run_scan, device {args.device}), one fresh subprocess per configuration")
        print(f"   {'engine':>6s} {'depth':>7s} {'workers':>7s} {'batch':>5s} {'threads':>11s} {'wall s':>7s} {'img/s':>7s} "
              f"{'ratio':>6s} {'after':>6s} {'RSS main MB':>11s} {'RSS child MB':>12s} {'CPU ms/img':>10s} {'eyes':>5s} {'full':>5s}  "
              "load before/after")
        report["scan"] = []
        for engine_name, depth, workers, batch, threads in itertools.product(
                args.engine.split(","), args.depth.split(","), worker_list, batch_list, thread_list):
            runs = [full_scan(folder, workers, batch, threads, args.device, engine_name, depth)
                    for _ in range(args.repeat)]
            r = min(runs, key=lambda x: x["wall"])
            r["ratio"] = ref / r["img_per_s"]
            report["scan"].append(r)
            w = "auto" if workers is None else str(workers)
            print(f"   {engine_name:>6s} {depth:>7s} {w:>7s} {batch:5d} {str(r['threads']):>11s} {r['wall']:7.2f} "
                  f"{r['img_per_s']:7.1f} {r['ratio']:6.2f} {100 * r['after_share']:5.1f}% {r['rss_main_mb']:11.0f} "
                  f"{r['rss_child_mb']:12.0f} {r['cpu_ms_per_img']:10.1f} {100 * r['reached_eyes']:4.0f}% "
                  f"{100 * r['reached_full']:4.0f}%  "
                  f"{r['load_before']}/{r['load_after']}", flush=True)
        print("   ratio = single-process Pillow decode img/s (pil) / scan img/s; goal <= 6.0, long-run 2.0. After = time once\n"
              "   the last file is in (grouping, results, report), as a share of the decoding-and-analysis phase. CPU ms/img = user+sys of the\n"
              "   scan's processes per file (main + its decoding workers, the subprocess's own start included): steadier\n"
              "   than wall time when other jobs share the cores. Eyes, full = share of files that reached FaceMesh, and the\n"
              "   spectral detector (facecheck.cascade)\n")

    if not args.skip_stages:
        print(f"3. per stage, CPU ms per image, on {min(args.stage_images, len(files))} files in this process "
              f"(best of {max(2, args.repeat)})")
        report["stages"] = []
        for threads in parse_list(args.stage_threads, int):
            s = stage_profile(files, args.device, threads, args.stage_images, max(2, args.repeat))
            report["stages"].append(s)
            cols = [k for k in s if k not in ("images", "faces", "threads", "load_average")]
            print(f"   intra-op threads {s['threads']} ({s['faces']}/{s['images']} with a face, "
                  f"load {s['load_average']}):")
            for k in cols:
                print(f"      {k:30s} {s[k]:7.2f}")
        print()

    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
