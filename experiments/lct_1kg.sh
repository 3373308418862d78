#!/usr/bin/env bash
# The real-data example of the README: the whole pipeline on the 1000 Genomes LCT region, for the
# 26 populations and the 5 super-populations. Needs ../shared/data; about 30 minutes on 2 CPU cores.
set -euo pipefail
DATA=${DATA:-../shared/data}
for label in pop super_pop; do
  out=runs/lct_$label
  genodiff prepare --vcf "$DATA/1kg_lct_chr2.vcf.gz" --panel "$DATA/1kg_lct_chr2.panel" \
    --genes "$DATA/genes_grch37.bed" --out "$out/data" --label "$label" --quiet
  genodiff train --data "$out/data" --workdir "$out/train" --config experiments/lct_1kg.py --quiet
  genodiff sample --workdir "$out/train" --n 2504 --labels train --sampler dpmpp --steps 50 \
    --out "$out/synthetic" --quiet
  genodiff evaluate --data "$out/data" --synthetic "$out/synthetic" --out "$out/report"
done
