#!/usr/bin/env bash
# README "A sparse genome-wide panel": the demo-size MLP + CNN (experiments/thinned_panel.py) on
# ~800 unlinked SNPs, one drawn at random (any frequency) per 50 kb window over 20 simulated
# contigs of 2 Mb, 600 people in 3 populations. About 7 minutes on 2 idle CPU cores.
# CONFIG=... picks another config (e.g. one that sets diffusion.prediction = "eps" for the old default).
set -euo pipefail
OUT=${OUT:-runs/thinned}
CONFIG=${CONFIG:-experiments/thinned_panel.py}
genodiff simulate --out "$OUT/cohort" --people-per-pop 200 --num-contigs 20 \
  --contig-length 2000000 --no-trait --quiet
python - "$OUT/cohort/cohort.vcf.gz" "$OUT/thinned.vcf.gz" <<'PY'
import sys

import numpy as np
from cyvcf2 import VCF, Writer

src, dst = sys.argv[1:]
windows = {}
for i, v in enumerate(VCF(src)):
    windows.setdefault((v.CHROM, v.POS // 50_000), []).append(i)
rng = np.random.default_rng(0)
keep = {int(rng.choice(ix)) for ix in windows.values()}
reader = VCF(src)
out = Writer(dst, reader, mode="wz")
for i, v in enumerate(reader):
    if i in keep:
        out.write_record(v)
out.close()
print(f"kept {len(keep)} of {i + 1} SNPs")
PY
genodiff prepare --vcf "$OUT/thinned.vcf.gz" --panel "$OUT/cohort/cohort.panel" \
  --genes "$OUT/cohort/genes.bed" --out "$OUT/data" --quiet
genodiff train --data "$OUT/data" --workdir "$OUT/train" --config "$CONFIG" --quiet
genodiff sample --workdir "$OUT/train" --n 300 --sampler dpmpp --steps 25 --out "$OUT/synthetic" \
  --quiet
genodiff evaluate --data "$OUT/data" --synthetic "$OUT/synthetic" --out "$OUT/report" \
  --sections fidelity,two_sample
