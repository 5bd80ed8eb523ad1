"""What one `facecheck.score_image` call costs, the first and the later ones (issue 19, item 9).

    python benchmarks/bench_score_image.py [--image samples/avatars/account_a.png] [--calls 20] [--device cpu]

Calls `score_image(IMAGE)` --calls times in this one process and prints the first call's wall time
(models loaded there) and the median and range of the later calls; then, as the yardstick, the same
analysis through one reused `Analyzer` (prepare + analyze, as a caller who kept an Analyzer
would run it). Wall time on a shared machine: the load average is printed beside it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=REPO / "samples" / "avatars" / "account_a.png")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import facecheck
    from facecheck import score_image
    from facecheck.pipeline.analyze import Analyzer
    from facecheck.pipeline.prepare import prepare
    from facecheck.settings import Settings
    print(f"facecheck from {facecheck.__file__}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

    times = timed(lambda: score_image(args.image, device=args.device), args.calls)
    later = times[1:]
    print(f"score_image: first call {times[0]:.0f} ms; later {len(later)} calls median {statistics.median(later):.1f} ms "
          f"(min {min(later):.1f}, max {max(later):.1f})")

    settings = Settings(device=args.device)
    analyzer = Analyzer(settings)

    def reused():
        analyzer.analyze([prepare(args.image, str(args.image), settings)])
    reused()   # loads the models
    times = timed(reused, args.calls)
    print(f"one reused Analyzer: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}); "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
