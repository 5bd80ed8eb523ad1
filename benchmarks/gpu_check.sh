#!/bin/sh
# The CUDA path of ONNX Runtime, measured on a GPU machine (README, "Speed and devices"). Needs onnxruntime-gpu
# (CUDA 13, with its CUDA/cuDNN libraries) where python3 finds it, facecheck importable, and a folder of test avatars,
# e.g. one built here by `python benchmarks/bench_scan.py --skip-scan --skip-stages` (scratch/bench_scan/...)
# and carried over. Each step runs on if an earlier one failed; everything lands in OUTDIR.
#
#   benchmarks/gpu_check.sh FOLDER OUTDIR [WORKERS]
FOLDER=$1; OUT=$2; WORKERS=${3:-15}
PY=${PY:-python3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
step() { echo; echo "== $*"; }
step providers
"$PY" -c "import onnxruntime as ort; print(ort.__version__, ort.get_available_providers())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step device tests
"$PY" -m pytest -q -p no:cacheprovider tests/test_devices.py
step scans, CPU against CUDA, same folder
for device in cpu cuda; do
    "$PY" -m facecheck scan "$FOLDER" --out "$OUT/scan_$device" --device $device --depth full --quiet
done
"$PY" benchmarks/device_agreement.py "$OUT/scan_cpu/results.jsonl" "$OUT/scan_cuda/results.jsonl" --json "$OUT/agreement.json"
step bench_scan on CUDA
"$PY" benchmarks/bench_scan.py --folder "$FOLDER" --device cuda --workers "$WORKERS" --batch-size 64 \
    --stage-images 200 --json "$OUT/bench_cuda.json"
step bench_scan on the same machine, CPUs only
"$PY" benchmarks/bench_scan.py --folder "$FOLDER" --device cpu --workers "$WORKERS" --skip-stages --json "$OUT/bench_cpu.json"
