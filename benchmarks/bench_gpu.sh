#!/usr/bin/env bash
# The paper's 1000 Genomes shape on one accelerator: the MLP+CNN denoiser (463 M parameters) at
# features 26,624 x 8, 26 classes. For float32 and bfloat16: the train step and one denoiser call
# at batch 32 and at the largest batch whose train step fits in device memory (`--batch max`), with
# FLOPs, MFU against the device's peak (genodiff_jax/bench/machine.py) and peak memory; then whole
# cohorts of 2504 people (the 1KG size) with guidance 0.1: ancestral with 500 steps (the paper's
# sampler) and DPM-Solver++ with 25. Tens of minutes on an H100.
# Output: $OUT/gpu_*.json (default OUT=runs/bench).
#
# Every size can be overridden from the environment, which is how tests/test_bench.py runs this
# script in seconds on a CPU: MODEL_ARGS (no spaces inside an argument), DTYPES, BIG_BATCH (an
# integer or max), N, ANCESTRAL_STEPS, DPM_STEPS, EXTRA_ARGS (e.g. --memory-limit-gb 0.1 where the
# device reports no memory limit).
set -euo pipefail
set -f  # MODEL_ARGS may hold JSON brackets: split it into words, never glob it
OUT=${OUT:-runs/bench}
MODEL_ARGS=${MODEL_ARGS:---model mlp_cnn --genes 26624 --classes 26}
DTYPES=${DTYPES:-float32 bfloat16}
BIG_BATCH=${BIG_BATCH:-max}
N=${N:-2504}
ANCESTRAL_STEPS=${ANCESTRAL_STEPS:-500}
DPM_STEPS=${DPM_STEPS:-25}
EXTRA_ARGS=${EXTRA_ARGS:-}
read -ra model <<< "$MODEL_ARGS"
read -ra extra <<< "$EXTRA_ARGS"
for dtype in $DTYPES; do
  for batch in 32 "$BIG_BATCH"; do
    genodiff bench "${model[@]}" "${extra[@]}" --dtype "$dtype" --batch "$batch" \
      --what train,forward --json "$OUT/gpu_mlp_cnn_${dtype}_b${batch}.json"
  done
  genodiff bench "${model[@]}" "${extra[@]}" --dtype "$dtype" --what sample --n "$N" \
    --guidance 0.1 --sampler ancestral --steps "$ANCESTRAL_STEPS" --repeats 2 \
    --json "$OUT/gpu_mlp_cnn_${dtype}_ancestral${ANCESTRAL_STEPS}.json"
  genodiff bench "${model[@]}" "${extra[@]}" --dtype "$dtype" --what sample --n "$N" \
    --guidance 0.1 --sampler dpmpp --steps "$DPM_STEPS" --repeats 3 \
    --json "$OUT/gpu_mlp_cnn_${dtype}_dpmpp${DPM_STEPS}.json"
done
