"""MobileStyleGAN faces (a distilled StyleGAN2-FFHQ-1024) at every truncation psi, for training the v3 detector.

    /work/venv-train/bin/pip install --no-deps random-face==2021.7.21.1 openvino
    nice -n 19 /work/venv-train/bin/python training/generate_mobilestylegan.py --count 4000 \\
        --out scratch/mobilestylegan                     # resumable: rerun the same command to continue

The generator is the OpenVINO IR pair shipped in PyPI `random-face` 2021.7.21.1 (Apache-2.0):
`MappingNetwork` (z [1, 512] -> style [1, 512]) and `SynthesisNetwork` (style -> RGB [1, 3, 1024, 1024] in
[-1, 1]). Current `openvino` loads it with `Core().read_model`; the package's own engine (the removed
`openvino.inference_engine` API) is not used. Truncation as in the package: style_mean + psi * (style -
style_mean), style_mean the mean style of MEAN_SAMPLES random z (seeded, so every run agrees).

Per image, everything comes from its seed (>= FIRST_SEED, never overlapping the seeds others publish): psi drawn
uniformly in [0.5, 1.0] (rounded to 0.01) and z standard normal, both from numpy's default_rng(seed). Stored like
../shared/data's first sources: Lanczos to a longer side of 512 px, JPEG q95 with 4:4:4 chroma. The manifest has
../shared/data/manifest.csv's columns: label `stylegan`, source `mobilestylegan`, `path_in_repo` =
`seed<seed>_psi<psi>` (the form training/train_backbone.psi_of reads), psi and seed in `notes` too.

Resumable: the manifest is appended one row per finished image (after the image is written), and seeds already
in it are skipped. Never imported by facecheck; the images stay under scratch/ (git-ignored).
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.scratch_manifest import appender, finished_rows  # noqa: E402

FIRST_SEED = 1_000_000
PSI_RANGE = (0.5, 1.0)
MEAN_SAMPLES = 4096          # as the random-face package
MEAN_SEED = 20210721
STORED_SIDE = 512
SOURCE = "mobilestylegan"
GENERATOR = "MobileStyleGAN (distilled StyleGAN2-FFHQ-1024), OpenVINO IR from PyPI random-face 2021.7.21.1"


def draw(seed: int) -> tuple[float, np.ndarray]:
    """psi and z of one seed: psi uniform in PSI_RANGE (0.01 steps), z standard normal [1, 512] float32."""
    rng = np.random.default_rng(seed)
    psi = round(float(rng.uniform(*PSI_RANGE)), 2)
    return psi, rng.standard_normal((1, 512)).astype(np.float32)


def truncate(style: np.ndarray, style_mean: np.ndarray, psi: float) -> np.ndarray:
    return style_mean + psi * (style - style_mean)


def to_image(img: np.ndarray) -> Image.Image:
    """Synthesis output [1, 3, H, W] in [-1, 1] -> RGB PIL image."""
    arr = np.clip((img[0].transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def stored_bytes(img: Image.Image) -> tuple[bytes, tuple[int, int]]:
    """As ../shared/data stores its first sources: Lanczos to <= STORED_SIDE, JPEG q95, 4:4:4 chroma."""
    w, h = img.size
    scale = STORED_SIDE / max(w, h)
    if scale < 1:
        img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue(), img.size


def done_seeds(manifest: Path) -> set[int]:
    return {int(r["path_in_repo"].split("_")[0][4:]) for r in finished_rows(manifest)}


class Generator:
    def __init__(self, threads: int):
        import importlib.util
        import openvino as ov
        # the package's __init__ imports gdown and its old engine: locate its data without importing it
        data = Path(importlib.util.find_spec("random_face").submodule_search_locations[0]) / "data"
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads}
        self.mapping = core.compile_model(core.read_model(str(data / "MappingNetwork.xml")), "CPU", config)
        self.synthesis = core.compile_model(core.read_model(str(data / "SynthesisNetwork.xml")), "CPU", config)
        rng = np.random.default_rng(MEAN_SEED)
        styles = [self.style(rng.standard_normal((1, 512)).astype(np.float32)) for _ in range(MEAN_SAMPLES)]
        self.style_mean = np.mean(styles, axis=0)

    def style(self, z: np.ndarray) -> np.ndarray:
        return next(iter(self.mapping([z]).values()))

    def face(self, z: np.ndarray, psi: float) -> Image.Image:
        return to_image(next(iter(self.synthesis([truncate(self.style(z), self.style_mean, psi)]).values())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("scratch/mobilestylegan"))
    ap.add_argument("--count", type=int, default=4000, help="seeds FIRST_SEED .. FIRST_SEED + count - 1")
    ap.add_argument("--first-seed", type=int, default=FIRST_SEED)
    ap.add_argument("--threads", type=int, default=1, help="OpenVINO CPU threads")
    args = ap.parse_args(argv)
    if args.first_seed < FIRST_SEED:
        print(f"error: seeds start at {FIRST_SEED} or above", file=sys.stderr)
        return 2
    folder = args.out / "images" / "stylegan" / SOURCE
    folder.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "manifest.csv"
    done = done_seeds(manifest)
    todo = [s for s in range(args.first_seed, args.first_seed + args.count) if s not in done]
    print(f"{len(done)} done, {len(todo)} to generate", flush=True)
    if not todo:
        return 0
    t0 = time.time()
    gen = Generator(args.threads)
    print(f"style mean of {MEAN_SAMPLES} samples in {time.time() - t0:.0f} s", flush=True)
    f, writer = appender(manifest)
    with f:
        t0 = time.time()
        for i, seed in enumerate(todo):
            psi, z = draw(seed)
            img = gen.face(z, psi)
            data, (w, h) = stored_bytes(img)
            rel = Path("images") / "stylegan" / SOURCE / f"msg_{seed}.jpg"
            tmp = args.out / (str(rel) + ".part")
            tmp.write_bytes(data)
            tmp.replace(args.out / rel)
            writer.writerow({"file": rel.as_posix(), "label": "stylegan", "source": SOURCE, "generator": GENERATOR,
                             "source_repo": "pypi:random-face==2021.7.21.1", "path_in_repo": f"seed{seed}_psi{psi:.2f}",
                             "orig_width": img.width, "orig_height": img.height, "orig_format": "generated",
                             "width": w, "height": h,
                             "notes": f"psi={psi:.2f} seed={seed}; truncation towards the mean style of {MEAN_SAMPLES} "
                                      f"z (seed {MEAN_SEED}) | stored: longer side <= {STORED_SIDE} (Lanczos), JPEG q95 4:4:4"})
            f.flush()
            if i % 25 == 0:
                print(f"{i + 1}/{len(todo)} seed {seed} psi {psi:.2f} ({(time.time() - t0) / (i + 1):.2f} s/face)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
