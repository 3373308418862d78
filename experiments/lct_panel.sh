#!/usr/bin/env bash
# The panel family (issue 26) on the 1000 Genomes LCT region, beside the masked and gene-PCA
# models and the references, in one report. Needs ../shared/data. Prints the wall time of each
# stage. MASKED / GENE_PCA: cohorts sampled earlier (experiments/lct_masked.sh) to put beside it;
# when unset those two are trained and sampled here too.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/lct}
stage() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "stage $name: $((SECONDS - t0)) s"; }
[ -d "$OUT/data" ] || stage prepare genodiff prepare --vcf "$DATA/1kg_lct_chr2.vcf.gz" \
  --panel "$DATA/1kg_lct_chr2.panel" --genes "$DATA/genes_grch37.bed" --out "$OUT/data" \
  --label pop --quiet
stage train_panel genodiff train --data "$OUT/data" --workdir "$OUT/panel" \
  --config experiments/lct_panel.py --quiet
stage sample_panel genodiff sample --workdir "$OUT/panel" --n 2504 --labels train \
  --out "$OUT/syn_panel" --quiet
if [ -z "${MASKED:-}" ] || [ -z "${GENE_PCA:-}" ]; then
  OUT=$OUT DATA=$DATA bash experiments/lct_masked.sh
  MASKED=$OUT/syn_masked GENE_PCA=$OUT/syn_gene_pca
fi
stage evaluate genodiff evaluate --data "$OUT/data" --synthetic panel="$OUT/syn_panel" \
  --synthetic masked="$MASKED" --synthetic gene_pca="$GENE_PCA" --out "$OUT/report_panel" \
  --seeds 1 --overwrite
