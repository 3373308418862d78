#!/usr/bin/env bash
# The paper's 1000 Genomes shape on one accelerator: the MLP+CNN denoiser (463 M parameters) at
# features 26,624 x 8, 26 classes. For float32 and bfloat16: the train step and one denoiser call
# at batch 32 and $BIG_BATCH (FLOPs, MFU against the device's peak from genodiff_jax/bench.py, peak
# memory), then whole cohorts of 2504 people (the 1KG size) with guidance 0.1: ancestral with 500
# steps (the paper's sampler) and DPM-Solver++ with 25. Tens of minutes on an H100.
# Output: $OUT/gpu_*.json (default OUT=runs/bench).
set -euo pipefail
OUT=${OUT:-runs/bench}
BIG_BATCH=${BIG_BATCH:-256}
model=(--model mlp_cnn --genes 26624 --classes 26)
for dtype in float32 bfloat16; do
  for batch in 32 "$BIG_BATCH"; do
    genodiff bench "${model[@]}" --dtype "$dtype" --batch "$batch" --what train,forward \
      --json "$OUT/gpu_mlp_cnn_${dtype}_b${batch}.json"
  done
  genodiff bench "${model[@]}" --dtype "$dtype" --what sample --n 2504 --guidance 0.1 \
    --sampler ancestral --steps 500 --repeats 2 --json "$OUT/gpu_mlp_cnn_${dtype}_ancestral500.json"
  genodiff bench "${model[@]}" --dtype "$dtype" --what sample --n 2504 --guidance 0.1 \
    --sampler dpmpp --steps 25 --repeats 3 --json "$OUT/gpu_mlp_cnn_${dtype}_dpmpp25.json"
done
