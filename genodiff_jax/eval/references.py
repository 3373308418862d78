"""Reference cohorts, so every metric can be read next to known-good and known-bad generators.

Found by name in `REFERENCES`; each is
`fn(train_calls, train_labels, labels, rng, *, test_calls=None, test_labels=None,
train_haplotypes=None, test_haplotypes=None, chroms=None, **options) -> (calls int8 [n, S],
labels [n])`, where `labels` is either the labels to generate (an array, e.g. the synthetic
cohort's, so a reference matches it class for class) or an int: that many people per training
class; `chroms` are the variants' chromosomes [S]; a reference ignores the splits it does not use.
Given the splits' haplotypes (int8 [n, 2, S]), a reference that can carry them returns them as a
third item: `(calls, labels, haplotypes)`.

- `real_test`: the real test split itself, as given (`labels` and `rng` are ignored): the ideal.
- `independent_sites`: every call drawn independently as Binomial(2, p_c) from the training allele
  frequency p_c of the person's class (Hardy-Weinberg at each site): keeps AF, destroys LD.
- `train_copies`: training genomes of the same class, each copied once before any is copied twice
  (a copier that covers its training set): perfect fidelity and the privacy failure.
- `codec_roundtrip` (option `calling`): real training genomes (drawn as `train_copies` draws
  them) encoded, decoded and called: what a perfect model of the gene-PCA features could reach,
  before any model is trained (`report.py` scores one `codec_roundtrip_<calling>` generator per
  method in `EvalSettings.roundtrip_calling`).
- `mosaic` (option `segment_length`, the mean in SNPs): HAPNEST-like; each synthetic haplotype is
  copied in segments of geometric length from random training haplotypes of the person's class
  (from training genotype rows, one mosaic a person, when there are no haplotypes). The strongest
  non-ML baseline for LD, which it keeps only by copying long segments (`report.py` scores one
  `mosaic_<N>` generator per length in `EvalSettings.mosaic_segments`).

They work on genotype calls; the features of a reference come from encoding it with the codec.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genodiff_jax.registry import Registry

REAL_IDEAL = "real_test"  # the reference that is real held-out data: the ideal generator
# The references a trivial generator reaches (no LD; copies of training people): the summary table
# sets them apart with the ideal.
FLOORS = ("independent_sites", "train_copies")

RefFn = Callable[..., tuple[np.ndarray, np.ndarray]]
REFERENCES: Registry[RefFn] = Registry("reference")
_ROWS = 1024  # people drawn per block in independent_sites (bounds the int64 binomial draws)
_MOSAIC_ROWS = 512  # sequences per block in mosaic (bounds its int64 [rows, S] donor table)


def register_reference(name: str) -> Callable[[RefFn], RefFn]:
    """Register `fn(train_calls, train_labels, labels, rng, **splits) -> (calls, labels)`."""
    return REFERENCES.register(name)


def get_reference(name: str) -> RefFn:
    """The reference registered as `name` (an unknown name raises a ValueError listing them)."""
    return REFERENCES[name]


def requested_labels(train_labels: np.ndarray | None, labels: np.ndarray | int, n_train: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train labels, labels to generate) as arrays; no training labels = one class 0."""
    train_labels = np.zeros(n_train, np.int64) if train_labels is None else np.asarray(train_labels)
    if np.ndim(labels) == 0:
        classes = np.unique(train_labels)
        return train_labels, np.repeat(classes, int(labels))
    labels = np.asarray(labels)
    unknown = np.setdiff1d(labels, train_labels)
    if unknown.size:
        raise ValueError(f"labels {unknown.tolist()} have no training examples")
    return train_labels, labels


@register_reference("real_test")
def real_test(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    *,
    test_calls: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    test_haplotypes: np.ndarray | None = None,
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """The real test split, unchanged (with its haplotypes when given)."""
    if test_calls is None:
        raise ValueError("the real_test reference needs test_calls")
    test_calls = np.asarray(test_calls, np.int8)
    if test_labels is None:
        test_labels = np.zeros(len(test_calls), np.int64)
    if test_haplotypes is None:
        return test_calls, np.asarray(test_labels)
    return test_calls, np.asarray(test_labels), np.asarray(test_haplotypes, np.int8)


@register_reference("independent_sites")
def independent_sites(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Independent Binomial(2, p_c) calls from per-class training allele frequencies."""
    train_calls = np.asarray(train_calls)
    train_labels, labels = requested_labels(train_labels, labels, len(train_calls))
    out = np.empty((len(labels), train_calls.shape[1]), np.int8)
    for c in np.unique(labels):
        p = train_calls[train_labels == c].mean(axis=0, dtype=np.float64) / 2.0
        rows = np.flatnonzero(labels == c)
        for i in range(0, len(rows), _ROWS):
            block = rows[i:i + _ROWS]
            out[block] = rng.binomial(2, p, size=(len(block), p.size))
    return out, labels


def covering_draw(train_labels: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray:
    """Training rows [len(labels)] of each requested label: a shuffled pass over the class's
    training people, then another, so each is drawn once before any twice."""
    pick = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        pool = np.flatnonzero(train_labels == c)
        passes = -(-len(rows) // len(pool))
        pick[rows] = np.concatenate([rng.permutation(pool) for _ in range(passes)])[:len(rows)]
    return pick


@register_reference("train_copies")
def train_copies(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    train_haplotypes: np.ndarray | None = None,
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Training genomes of the requested class, each copied once before any twice
    (`covering_draw`), with their haplotypes when given."""
    train_calls = np.asarray(train_calls, np.int8)
    train_labels, labels = requested_labels(train_labels, labels, len(train_calls))
    pick = covering_draw(train_labels, labels, rng)
    if train_haplotypes is None:
        return train_calls[pick], labels
    return train_calls[pick], labels, np.asarray(train_haplotypes[pick], np.int8)


@register_reference("codec_roundtrip")
def codec_roundtrip(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    *,
    codec=None,
    calling: str = "round",
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Real people through the codec and back: training genomes drawn as `train_copies` draws
    them, encoded, decoded and called by `calling` (a name in `sampling.calling.CALLERS`).

    What a perfect model of the features could reach. Training people, not the test split: every
    section compares a generator with the test split, and the test split's own round trip would
    be paired with it (a classifier or a nearest neighbour would meet each person's original).
    The codec was fitted on them, which flatters the reconstruction by about K/N_train per gene
    (K components); as near-copies of training people its privacy figures are a copier's.
    `codec` is the dataset's `GeneCodec`."""
    from genodiff_jax.sampling.calling import call_genotypes, decode_features

    if codec is None:
        raise ValueError("the codec_roundtrip reference needs the dataset's codec")
    train_calls = np.asarray(train_calls, np.int8)
    train_labels, labels = requested_labels(train_labels, labels, len(train_calls))
    pick = covering_draw(train_labels, labels, rng)
    dosages = decode_features(codec.encode(train_calls[pick]), codec)
    return call_genotypes(dosages, calling, codec), labels


@register_reference("mosaic")
def mosaic(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    *,
    segment_length: float = 100,
    train_haplotypes: np.ndarray | None = None,
    chroms: np.ndarray | None = None,
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """A mosaic of same-class training haplotypes (or genotype rows when `train_haplotypes` is
    None) in segments of geometric length, mean `segment_length` SNPs; a new segment also starts
    where `chroms` (the variants' chromosomes [S]) changes."""
    train_calls = np.asarray(train_calls, np.int8)
    train_labels, labels = requested_labels(train_labels, labels, len(train_calls))
    if train_haplotypes is None:
        return mosaic_sequences(train_calls, train_labels, labels, segment_length, rng,
                                chroms=chroms), labels
    n_sites = train_calls.shape[1]
    sources = np.asarray(train_haplotypes, np.int8).reshape(-1, n_sites)
    haplotypes = mosaic_sequences(sources, np.repeat(train_labels, 2), np.repeat(labels, 2),
                                  segment_length, rng, chroms=chroms).reshape(-1, 2, n_sites)
    return haplotypes.sum(axis=1, dtype=np.int8), labels, haplotypes


def mosaic_sequences(sources: np.ndarray, source_labels: np.ndarray, labels: np.ndarray,
                     segment_length: float, rng: np.random.Generator, *,
                     chroms: np.ndarray | None = None) -> np.ndarray:
    """Rows int8 [len(labels), S], each copied in segments of Geometric(1 / `segment_length`)
    SNPs from uniformly drawn `sources` rows [R, S] whose `source_labels` equal its label
    (`segment_length` = inf: one segment, a whole source row per chromosome)."""
    if not segment_length >= 1:
        raise ValueError(f"segment_length must be at least 1 SNP, got {segment_length}")
    sources = np.asarray(sources, np.int8)
    n_sites = sources.shape[1]
    bounds = _chromosome_bounds(chroms, n_sites)
    out = np.empty((len(labels), n_sites), np.int8)
    for c in np.unique(labels):
        pool = np.flatnonzero(source_labels == c)
        if pool.size == 0:
            raise ValueError(f"label {c} has no source sequences")
        rows = np.flatnonzero(labels == c)
        for i in range(0, len(rows), _MOSAIC_ROWS):
            block = rows[i:i + _MOSAIC_ROWS]
            for start, stop in bounds:
                donors = _segment_donors(len(block), stop - start, 1.0 / segment_length,
                                         len(pool), rng)
                out[block, start:stop] = sources[pool[donors], np.arange(start, stop)]
    return out


def _chromosome_bounds(chroms: np.ndarray | None, n_sites: int) -> list[tuple[int, int]]:
    """(start, stop) column ranges of runs of one chromosome (the whole row when None)."""
    if chroms is None or n_sites == 0:
        return [(0, n_sites)]
    chroms = np.asarray(chroms)
    starts = np.flatnonzero(np.r_[True, chroms[1:] != chroms[:-1]])
    return list(zip(starts.tolist(), np.r_[starts[1:], n_sites].tolist()))


def _segment_donors(n_rows: int, n_sites: int, switch_rate: float, n_pool: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Donor index in [0, n_pool) per row and site [n_rows, n_sites]: segments of
    Geometric(switch_rate) length, each with a uniformly drawn donor."""
    if switch_rate == 0:  # infinite mean length: one donor for the whole range
        lengths = np.full((n_rows, 1), n_sites, np.int64)
    else:  # enough segments to cover n_sites almost always; the loop tops up the rare short row
        expected = n_sites * switch_rate
        lengths = rng.geometric(switch_rate, (n_rows, int(expected + 6 * expected ** 0.5 + 8)))
        while (short := lengths.sum(axis=1) < n_sites).any():
            extra = rng.geometric(switch_rate, (n_rows, lengths.shape[1]))
            lengths = np.concatenate([lengths, np.where(short[:, None], extra, 0)], axis=1)
    ends = np.minimum(np.cumsum(lengths, axis=1), n_sites)
    covered = np.diff(ends, axis=1, prepend=0)  # each segment's length, clipped to the range
    donors = rng.integers(0, n_pool, size=lengths.shape)
    return np.repeat(donors.ravel(), covered.ravel()).reshape(n_rows, n_sites)
