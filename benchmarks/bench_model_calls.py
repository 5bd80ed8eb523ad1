"""Where an analyzer's time goes, model call by model call: wall time per ONNX model, its number of calls and of
distinct input shapes, for each scan depth, on a fresh Runtime (cold: sessions new, nothing cached) and then again
(warm). On CUDA, `--search` compares cuDNN's algorithm searches (facecheck.runtime.Runtime.cudnn_conv_algo_search):
EXHAUSTIVE times every algorithm for each new input shape, which batches of changing shape pay again and again.

    python benchmarks/bench_model_calls.py --folder DIR [--n 200] [--device cuda] [--chunk 64]
                                           [--search HEURISTIC,EXHAUSTIVE] [--json out.json]

DIR: a folder of avatars, e.g. the one benchmarks/bench_scan.py builds under scratch/bench_scan/. `--chunk`: files
per analyze call (a CPU worker's WORKER_CHUNK is 8; on CUDA the scan hands the main process --batch-size files).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def profile(files: list[Path], device: str, depth: str, chunk: int) -> dict:
    from facecheck.pipeline.analyze import Analyzer
    from facecheck.pipeline.prepare import prepare
    from facecheck.runtime import Runtime
    from facecheck.settings import Settings

    calls = defaultdict(lambda: {"calls": 0, "seconds": 0.0, "shapes": set()})
    plain_run = Runtime.run

    def timed_run(self, filename, inputs):
        start = time.perf_counter()
        out = plain_run(self, filename, inputs)
        c = calls[filename]
        c["calls"] += 1
        c["seconds"] += time.perf_counter() - start
        c["shapes"].add(tuple(tuple(v.shape) for v in inputs.values()))
        return out

    settings = Settings(device=device, workers=0, depth=depth)
    analyzer = Analyzer(settings)
    passes = []
    Runtime.run = timed_run
    try:
        for _ in ("cold", "warm"):
            calls.clear()
            prepared = [prepare(p, p.name, settings) for p in files]
            start = time.perf_counter()
            for i in range(0, len(prepared), chunk):
                analyzer.analyze(prepared[i:i + chunk])
            wall = time.perf_counter() - start
            passes.append({"ms_per_img": 1000 * wall / len(files),
                           "models": {k: {"calls": v["calls"], "shapes": len(v["shapes"]),
                                          "ms_per_img": 1000 * v["seconds"] / len(files)}
                                      for k, v in sorted(calls.items())}})
    finally:
        Runtime.run = plain_run
    return {"cold": passes[0], "warm": passes[1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--depth", default="cascade,full")
    ap.add_argument("--search", default="HEURISTIC", help="comma list of cuDNN algorithm searches (CUDA only)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from facecheck.pipeline.walk import walk
    from facecheck.runtime import Runtime
    files = sorted(p for p, _ in walk(args.folder))
    files = files[::max(1, len(files) // args.n)][:args.n]   # spread over the folder's labels
    report = []
    for search in args.search.split(","):
        Runtime.cudnn_conv_algo_search = search
        for depth in args.depth.split(","):
            r = profile(files, args.device, depth, args.chunk)
            r.update(search=search, depth=depth, device=args.device, files=len(files), chunk=args.chunk)
            report.append(r)
            print(f"{args.device} cuDNN search {search}, depth {depth}, {len(files)} files in analyze calls of "
                  f"{args.chunk}: cold {r['cold']['ms_per_img']:.2f} ms/img, warm {r['warm']['ms_per_img']:.2f} ms/img")
            for name, m in r["warm"]["models"].items():
                cold = r["cold"]["models"].get(name, {"ms_per_img": 0.0})
                print(f"   {name:24s} {m['calls']:5d} calls {m['shapes']:5d} shapes  cold {cold['ms_per_img']:7.2f}  "
                      f"warm {m['ms_per_img']:7.2f} ms/img")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
