#!/usr/bin/env bash
# The GPU run of issue 17's planted truth: a 100-filter student distilled from the released compact
# model 190923/neuron0 with PyTorch (code_distill_and_prune/gpu_distill.py), on a machine without
# TensorFlow or the release. Prepare here first (with Keras and the release):
#
#     python -m code_distill_and_prune.gpu_distill --prepare .devicedata
#
# then run there, from the repository root, with .devicedata carried:
#
#     bash code_distill_and_prune/gpu_job.sh [SECONDS [MORE gpu_distill OPTIONS]]
#
# SECONDS (default 480) is the training script's wall-time budget, counted from its own start; give
# the command about 60 s more (540 s for the default). Results go to $OUT (default
# results/gpu_distill): student_weights.npz, learning_curve.json, gpu_distill_log.txt, replaced after
# every chunk, so a run stopped at its limit keeps its last chunk; and gpu_job_stdout.txt. Options
# after SECONDS are passed on and override the ones below (e.g. --tf32, --chunk-images 250000).
set -u -o pipefail
export PYTHONUNBUFFERED=1
budget="${1:-480}"
out="${OUT:-results/gpu_distill}"
data="${DEVICEDATA:-.devicedata}"
python="${PYTHON:-python3}"
# Decoded images (about 450 MB) go here, outside the repository.
export COWLEY2023_CACHE_DIR="${COWLEY2023_CACHE_DIR:-/tmp/cowley2023_cache}"
mkdir -p "$out"
{
    date -u +"start %Y-%m-%dT%H:%M:%SZ"
    nvidia-smi || echo "nvidia-smi failed"
    echo "CPUs: $(nproc); memory: $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
    "$python" -m code_distill_and_prune.gpu_distill \
        --data-root "$data/release" --student-weights "$data/student_initial_weights.npz" \
        --teacher 190923/0 --seconds "$budget" --out "$out" "${@:2}"
    status=$?
    echo "exit status $status"
    exit "$status"
} 2>&1 | tee "$out/gpu_job_stdout.txt"
