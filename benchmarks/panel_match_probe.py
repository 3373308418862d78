"""How each `diffusion.panel_match` (`data.panels.MATCHES`) picks neighbours panels, no model: for
generated people (`neighbour_panels`, `anchors` anchors a class, R / 2 rows each), the share of
panel rows the 10 % most-picked rows fill (hubs), the share from the anchor's own class and the
per-class AF r of the rows read against the class's training AF; for held-out people
(`best_matching` on their whole haplotypes, as validation reads them), the share of each
haplotype's alleles of MAF < 0.05 that one of its R / 2 rows carries.

    python benchmarks/panel_match_probe.py DATA [R] [anchors]
"""

from __future__ import annotations

import sys

import numpy as np

from genodiff_jax.data.loader import load_prepared
from genodiff_jax.data.panels import MATCHES, best_matching, neighbour_panels, panel_rows


def probe(data_dir: str, size: int = 16, anchors: int = 200) -> None:
    data = load_prepared(data_dir)
    train, test = np.asarray(data.tokens("train")), np.asarray(data.tokens("test"))
    labels = np.asarray(data.train.labels)
    rows = panel_rows(train)
    row_class = np.repeat(labels, rows.shape[0] // len(labels))
    af = rows.mean(axis=0)
    minor, maf = (af < 0.5).astype(np.int8), np.minimum(af, 1 - af)  # the minor allele's token
    asked = np.repeat(np.unique(labels), anchors)
    for match in MATCHES:
        index = neighbour_panels(train, asked, labels, size, np.random.default_rng(0), match)
        picked = np.bincount(index.ravel(), minlength=len(rows))
        hubs = np.sort(picked)[-len(rows) // 10:].sum() / picked.sum()
        own = np.mean(row_class[index] == asked[:, None])
        af_r = np.mean([np.corrcoef(rows[row_class == c].mean(0),
                                    rows[index[asked == c].ravel()].mean(0))[0, 1]
                        for c in np.unique(labels)])
        held = best_matching(rows, test, size, match=match).reshape(len(test), -1, 2)
        carried = []
        for h in range(2):
            hap = test[:, h]  # [n, S]
            low = (maf > 0) & (maf < 0.05) & (hap == minor)  # the haplotype's low-MAF alleles
            found = (rows[held[:, :, h]] == minor).any(axis=1)  # [n, S]: a row carries it
            carried.append((found & low).sum() / low.sum())
        print(f"{match:13s} hubs {hubs:.3f}  own class {own:.3f}  panel AF r per class "
              f"{af_r:.4f}  held-out MAF<0.05 minor alleles carried {np.mean(carried):.3f}")


if __name__ == "__main__":
    probe(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
