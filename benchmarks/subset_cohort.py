"""A random subset of a phased cohort (VCF + panel), for measuring a config on a small cohort:
issue 25 asks that the masked family's defaults converge on 360 people drawn from LCT as well as on
the whole region.

    python benchmarks/subset_cohort.py --vcf ../shared/data/1kg_lct_chr2.vcf.gz \\
        --panel ../shared/data/1kg_lct_chr2.panel --n 360 --out runs/lct360/cohort
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genodiff_jax.data import io, tables, writers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vcf", required=True)
    p.add_argument("--panel", required=True)
    p.add_argument("--n", type=int, default=360)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    g = io.read_vcf(args.vcf, haplotypes=True, progress=False)
    rows = np.sort(np.random.default_rng(args.seed).choice(len(g.samples), args.n, replace=False))
    panel = tables.read_panel(args.panel)
    row_of = {s: i for i, s in enumerate(panel.samples)}
    samples = [str(s) for s in g.samples[rows]]
    args.out.mkdir(parents=True, exist_ok=True)
    writers.write_vcf(args.out / "cohort.vcf.gz", g.variants, samples,
                      g.haplotypes()[rows].transpose(0, 2, 1), phased=True)
    tables.write_panel(args.out / "cohort.panel", samples,
                       {name: np.asarray(col)[[row_of[s] for s in samples]]
                        for name, col in panel.columns.items()})
    print(f"wrote {args.n} of {len(g.samples)} people, {len(g.variants)} SNPs -> {args.out}")


if __name__ == "__main__":
    main()
