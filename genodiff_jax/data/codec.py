"""Per-gene PCA codec (DESIGN 1.1): genotypes <-> z-scored features [N, G_pad, K] with a mask
[G_pad, K].

Fitted on the training split only. Vectorised: genes are grouped into buckets of equal padded SNP
count, and each bucket is one batched Gram matrix + `eigh` (float64), one batched matmul to encode
and one to decode. Padded SNP columns are zero after centring, so they change nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.data.genes import GeneAssignment

K_SLOTS = 8  # components per gene slot (DESIGN 1.1)
GENE_MULTIPLE = 128  # the 1-D CNN halves the gene axis 7 times
_BLOCK_BYTES = 1 << 28  # float32 working-set cap per batched gather (256 MiB)


def paper_components(n_snps: int) -> int:
    """8 components for genes with > 20 SNPs, 4 for 5-20, 1 for <= 4 (DESIGN 1.1)."""
    return 8 if n_snps > 20 else 4 if n_snps >= 5 else 1


def all_components(n_snps: int) -> int:
    """Keep every component (lossless up to rank): for round-trip checks and studies."""
    return n_snps


COMPONENT_RULES: dict[str, Callable[[int], int]] = {"paper": paper_components,
                                                     "all": all_components}


def pad_genes(n_genes: int, multiple: int = GENE_MULTIPLE) -> int:
    return max(multiple, -(-n_genes // multiple) * multiple)


@dataclasses.dataclass
class Bucket:
    """Genes sharing one padded SNP count: columns [B, P] (-1 = pad), means [B, P],
    loadings [B, K, P]."""

    slots: np.ndarray
    columns: np.ndarray
    mean: np.ndarray
    loadings: np.ndarray

    def gather(self, dosages: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Centred genotype block [n, B, P] float32 of `rows` (default all; padded columns zero).

        Rows and columns are gathered in one indexing step: selecting rows first would copy
        whole genotype rows (all S columns) for every bucket."""
        columns = np.maximum(self.columns, 0)
        x = (dosages[:, columns] if rows is None
             else dosages[np.asarray(rows)[:, None, None], columns]).astype(np.float32)
        x -= self.mean
        x *= self.columns >= 0
        return x


@dataclasses.dataclass
class GeneCodec:
    """Per-gene PCA + z-scoring. features = (scores - z_mean) / z_std, zero where mask is False."""

    n_variants: int
    gene_names: np.ndarray
    n_components: np.ndarray  # [G]
    mask: np.ndarray  # [G_pad, K] bool
    z_mean: np.ndarray  # [G_pad, K]
    z_std: np.ndarray  # [G_pad, K]
    explained_variance: np.ndarray  # [G_pad, K] training-set variance of each kept score
    total_variance: np.ndarray  # [G] training-set variance of each gene's SNPs (sum over columns)
    buckets: list[Bucket]
    variant_variance: np.ndarray | None = None  # [S] training-set variance (None: an older codec)

    @property
    def feature_shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    @property
    def n_genes(self) -> int:
        return len(self.gene_names)

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit(cls, dosages: np.ndarray, genes: GeneAssignment, *, rows: np.ndarray | None = None,
            rule: Callable[[int], int] = paper_components, k_slots: int | None = None,
            gene_multiple: int = GENE_MULTIPLE, progress: bool = False) -> GeneCodec:
        """Fit on the training rows of dosages [N, S] (all rows by default; passing `rows` avoids
        copying the training matrix); K = 8 slots unless the rule keeps more."""
        rows = np.arange(dosages.shape[0]) if rows is None else np.asarray(rows)
        n, n_variants = len(rows), dosages.shape[1]
        sizes = genes.sizes
        wanted = np.array([min(rule(int(s)), int(s)) for s in sizes], np.int64)
        k_slots = k_slots or max(K_SLOTS, int(wanted.max()))
        g_pad = pad_genes(len(genes), gene_multiple)
        explained = np.zeros((g_pad, k_slots))
        total = np.zeros(len(genes))
        n_components = np.zeros(len(genes), np.int64)
        buckets = []
        padded = _padded_width(sizes)
        groups = [np.flatnonzero(padded == p) for p in np.unique(padded)]
        for gene_ids in tqdm(groups, desc="fitting gene PCA", disable=not progress, leave=False):
            p = int(padded[gene_ids[0]])
            # Per gene: the float32 block (n x P) and the P x P covariance with its float64 copies.
            for chunk in _chunks(gene_ids, (n + 4 * p) * p * 8):
                columns = np.full((len(chunk), p), -1, np.int64)
                for b, g in enumerate(chunk):
                    columns[b, :sizes[g]] = genes.members(g)
                x = (dosages[rows[:, None, None], np.maximum(columns, 0)]
                     * (columns >= 0))  # [n, B, P]
                mean, loadings, variances, totals = _pca(x.transpose(1, 0, 2), k_slots)
                rank_tol = variances[:, :1] * max(n, p) * 1e-12
                keep = np.minimum(wanted[chunk][:, None],
                                  (variances > np.maximum(rank_tol, 1e-12)).sum(1, keepdims=True))
                kept = np.arange(k_slots)[None, :] < keep
                loadings *= kept[:, :, None]
                n_components[chunk] = keep[:, 0]
                explained[chunk] = variances * kept
                total[chunk] = totals
                buckets.append(Bucket(chunk.astype(np.int64), columns, mean.astype(np.float32),
                                      loadings.astype(np.float32)))
        mask = np.arange(k_slots)[None, :] < np.pad(n_components, (0, g_pad - len(genes)))[:, None]
        codec = cls(n_variants, genes.names, n_components, mask, np.zeros((g_pad, k_slots)),
                    np.ones((g_pad, k_slots)), explained, total, buckets,
                    _column_variances(dosages, rows))
        scores = codec.scores(dosages, rows=rows)
        codec.z_mean = np.where(mask, scores.mean(axis=0), 0.0).astype(np.float32)
        std = scores.std(axis=0)
        codec.z_std = np.where(mask & (std > 0), std, 1.0).astype(np.float32)
        return codec

    # -- encode / decode -----------------------------------------------------------------------

    def scores(self, dosages: np.ndarray, progress: bool = False,
               rows: np.ndarray | None = None) -> np.ndarray:
        """Raw PCA scores [n, G_pad, K] float32 (not z-scored) of `rows` (default: all rows)."""
        if dosages.shape[1] != self.n_variants:
            raise ValueError(
                f"codec was fitted on {self.n_variants} variants, got {dosages.shape[1]}"
            )
        rows = np.arange(dosages.shape[0]) if rows is None else np.asarray(rows)
        out = np.zeros((len(rows), *self.feature_shape), np.float32)
        for bucket in tqdm(self.buckets, desc="encoding genes", disable=not progress, leave=False):
            for part in _row_chunks(len(rows), bucket.columns.size * 4):
                x_bnp = bucket.gather(dosages, rows[part]).transpose(1, 0, 2)
                out[part, bucket.slots] = (
                    x_bnp @ bucket.loadings.transpose(0, 2, 1)
                ).transpose(1, 0, 2)
        return out

    def encode(self, dosages: np.ndarray, progress: bool = False) -> np.ndarray:
        """Dosages [N, S] -> features [N, G_pad, K] float32, z-scored, zero in padded slots."""
        return ((self.scores(dosages, progress) - self.z_mean) / self.z_std
                * self.mask).astype(np.float32)

    def decode(self, features: np.ndarray) -> np.ndarray:
        """Features [N, G_pad, K] -> dosages [N, S] float32; a SNP in several genes is averaged."""
        features = np.asarray(features, np.float32)
        scores = (features * self.z_std + self.z_mean) * self.mask
        n = features.shape[0]
        total = np.zeros((n, self.n_variants), np.float32)
        counts = np.zeros(self.n_variants, np.float32)
        for bucket in self.buckets:
            valid = bucket.columns >= 0
            cols = bucket.columns[valid]
            np.add.at(counts, cols, 1.0)
            unique = len(np.unique(cols)) == len(cols)  # overlapping genes can share a bucket
            for rows in _row_chunks(n, bucket.columns.size * 4):
                scores_bnk = scores[rows][:, bucket.slots].transpose(1, 0, 2)
                recon = (scores_bnk @ bucket.loadings).transpose(1, 0, 2)  # [n, B, P]
                recon += bucket.mean
                if unique:
                    total[rows, cols] += recon[:, valid]
                else:
                    block = total[rows]
                    np.add.at(block, (slice(None), cols), recon[:, valid])
                    total[rows] = block
        return total / np.maximum(counts, 1.0)

    def kept_variance_fraction(self) -> np.ndarray:
        """Per variant [S], the share of its training-set variance the kept components carry (1:
        the codec gives every training person's genotype back; 0: only the mean comes back).

        Kept variance is sum_k loading^2 x the score's variance; a SNP in several genes gets the
        mean over them, as `decode` averages them. A codec saved before `variant_variance` was
        stored takes each variant's variance as 2p(1 - p), scaled so that a gene's variants add up
        to its stored total (exact for a one-SNP gene). Clipped to [0, 1]; 1 for a constant SNP."""
        return self.variance_shares()[0]

    def residual_variance(self) -> np.ndarray:
        """Per variant [S], the training-set genotype variance the kept components leave out,
        (1 - kept share) x the variant's variance: how far, on average, a person's genotype lies
        from its decoded dosage (0 where the codec is lossless)."""
        kept, own = self.variance_shares()
        return (1.0 - kept) * own

    def variance_shares(self) -> tuple[np.ndarray, np.ndarray]:
        """(kept share, the variant's variance), each [S], averaged over the genes holding it."""
        total = np.zeros(self.n_variants)
        variance = np.zeros(self.n_variants)
        counts = np.zeros(self.n_variants)
        for b in self.buckets:
            valid = b.columns >= 0
            if self.variant_variance is not None:
                own = np.where(valid, self.variant_variance[np.maximum(b.columns, 0)], 0.0)
            else:
                p = np.clip(b.mean.astype(np.float64) / 2.0, 0.0, 1.0)
                hwe = 2.0 * p * (1.0 - p) * valid  # [B, P]
                own = hwe * (self.total_variance[b.slots]
                             / np.maximum(hwe.sum(1), 1e-12))[:, None]
            kept = np.einsum("bkp,bk->bp", np.square(b.loadings.astype(np.float64)),
                             self.explained_variance[b.slots])
            frac = np.clip(np.where(own > 1e-12, kept / np.maximum(own, 1e-12), 1.0), 0.0, 1.0)
            np.add.at(total, b.columns[valid], frac[valid])
            np.add.at(variance, b.columns[valid], own[valid])
            np.add.at(counts, b.columns[valid], 1.0)
        counts = np.maximum(counts, 1.0)  # in no gene: share 0, variance 0
        return total / counts, variance / counts

    def restricted_to(self, used: np.ndarray) -> GeneCodec:
        """The same codec over the variant columns `used` (sorted; every column a gene reads must
        be among them), renumbered 0..len(used)-1: fit and encode on the full matrix, then keep
        only the variants the genes use, without copying the genotypes."""
        used = np.asarray(used)
        buckets = []
        for b in self.buckets:
            valid = b.columns >= 0
            if not np.isin(b.columns[valid], used).all():
                raise ValueError("restricted_to: a gene reads a column that is not in `used`")
            columns = np.where(valid, np.searchsorted(used, b.columns), -1)
            buckets.append(dataclasses.replace(b, columns=columns))
        variance = None if self.variant_variance is None else self.variant_variance[used]
        return dataclasses.replace(self, n_variants=len(used), buckets=buckets,
                                   variant_variance=variance)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name != "buckets" and getattr(self, f.name) is not None}
        arrays["n_variants"] = np.array(self.n_variants)
        arrays["n_buckets"] = np.array(len(self.buckets))
        for i, b in enumerate(self.buckets):
            for f in dataclasses.fields(b):
                arrays[f"bucket{i}_{f.name}"] = getattr(b, f.name)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GeneCodec:
        with np.load(Path(path)) as z:
            buckets = [Bucket(*(z[f"bucket{i}_{f.name}"] for f in dataclasses.fields(Bucket)))
                       for i in range(int(z["n_buckets"]))]
            kwargs = {f.name: z[f.name] for f in dataclasses.fields(cls)
                      if f.name not in ("buckets", "n_variants") and f.name in z.files}
            return cls(n_variants=int(z["n_variants"]), buckets=buckets, **kwargs)


def to_calls(dosages: np.ndarray) -> np.ndarray:
    """Expected dosages -> hard calls in {0, 1, 2} by rounding."""
    return np.clip(np.rint(dosages), 0, 2).astype(np.int8)


def _column_variances(dosages: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Variance [S] float64 over `rows` of each column of dosages [N, S], in column blocks."""
    out = np.zeros(dosages.shape[1])
    for cols in _row_chunks(dosages.shape[1], len(rows) * 8):
        out[cols] = dosages[:, cols][rows].astype(np.float64).var(axis=0)
    return out


def _padded_width(sizes: np.ndarray) -> np.ndarray:
    """Bucket widths: powers of two up to 256 SNPs (many small genes batch well), then multiples
    of 256 (large genes are few; padding them to a power of two would cost up to 8x)."""
    sizes = np.maximum(sizes, 1)
    pow2 = 1 << np.ceil(np.log2(sizes)).astype(np.int64)
    return np.where(sizes <= 256, pow2, -(-sizes // 256) * 256)


def _pca(x_bnp: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Means [B, P], top-k axes [B, k, P], their variances [B, k] and total variances [B] of integer
    genotype blocks x [B, n, P] (float64 results, zero-padded to k).

    Uses the P x P covariance when P <= n (from an exact float32 integer Gram matrix, centred in
    float64), else the n x n Gram matrix of the centred data (dual PCA).
    """
    b, n, p = x_bnp.shape
    exact32 = n * 4 < 2**24  # integer products <= 4 sum exactly in float32 up to this n
    xf = x_bnp.astype(np.float32 if exact32 else np.float64)
    mean = xf.mean(axis=1, dtype=np.float64)
    if p <= n:
        cov = (xf.transpose(0, 2, 1) @ xf).astype(np.float64) / n
        cov -= mean[:, :, None] * mean[:, None, :]
        totals = np.trace(cov, axis1=1, axis2=2)
        w, v = _top_eigh(cov, k)
        v = v.transpose(0, 2, 1)  # [B, k, P]
    else:
        xc = xf.astype(np.float64) - mean[:, None, :]
        gram = xc @ xc.transpose(0, 2, 1) / n
        totals = np.trace(gram, axis1=1, axis2=2)
        w, u = _top_eigh(gram, k)
        v = (xc.transpose(0, 2, 1) @ u).transpose(0, 2, 1)
        v /= np.sqrt(np.maximum(w, 1e-300) * n)[:, :, None]
    w = np.maximum(w, 0.0)
    m = w.shape[1]
    axes, variances = np.zeros((b, k, p)), np.zeros((b, k))
    axes[:, :m], variances[:, :m] = v, w
    # Deterministic signs: the largest-magnitude loading of each axis is positive.
    pivot = np.take_along_axis(axes, np.abs(axes).argmax(-1)[..., None], axis=-1)
    axes *= np.where(pivot < 0, -1.0, 1.0)
    return mean, axes, variances, totals


def _top_eigh(mats: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest min(k, M) eigenpairs of symmetric [B, M, M], descending: values [B, k'], vectors
    [B, M, k']. Batched LAPACK for small M; for large M only the wanted subset is computed."""
    from scipy.linalg import eigh

    m = mats.shape[-1]
    k = min(k, m)
    if m <= 512:
        w, v = np.linalg.eigh(mats)
        return w[:, ::-1][:, :k], v[:, :, ::-1][:, :, :k]
    pairs = [eigh(a, subset_by_index=[m - k, m - 1]) for a in mats]
    return (np.stack([w[::-1] for w, _ in pairs]), np.stack([v[:, ::-1] for _, v in pairs]))


def _chunks(ids: np.ndarray, bytes_per_item: int) -> list[np.ndarray]:
    per = max(1, _BLOCK_BYTES // max(bytes_per_item, 1))
    return [ids[i:i + per] for i in range(0, len(ids), per)]


def _row_chunks(n_rows: int, bytes_per_row: int) -> list[slice]:
    per = max(1, _BLOCK_BYTES // max(bytes_per_row, 1))
    return [slice(i, min(i + per, n_rows)) for i in range(0, n_rows, per)]
