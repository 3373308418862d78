#!/usr/bin/env bash
# The CPU benchmark (docs/benchmarks.md): the four denoisers at the paper's sizes on features
# 2048 x 8 (26 classes), batch 32, float32; the real train step and one denoiser call (= one
# unguided sampling step), compile apart, median of 5 after 2 warm-up calls. The same first line
# with `--reference torch` times each denoiser's PyTorch twin in turns with ours (needs
# benchmarks/requirements-torch.txt). Then the masked-diffusion family (experiments/masked.py,
# snp_unet) at the LCT window, 7680 SNPs x 2 haplotypes, batch 16: train step and one call, with
# tokens/s.
# Run it on an otherwise idle machine: a few minutes on 2 cores for each line.
# Output: $OUT/cpu_2048x8_b32.json and $OUT/cpu_masked_7680x2_b16.json (default OUT=runs/bench).
set -euo pipefail
OUT=${OUT:-runs/bench}
genodiff bench --models mlp_cnn,mlp_unet,cnn_unet,transformer --genes 2048 --batch 32 \
  --dtype float32 --what train,forward --repeats 5 --warmup 2 --json "$OUT/cpu_2048x8_b32.json"
genodiff bench --config experiments/masked.py --window 7680 --batch 16 --dtype float32 \
  --what train,forward --repeats 5 --warmup 2 --json "$OUT/cpu_masked_7680x2_b16.json"
