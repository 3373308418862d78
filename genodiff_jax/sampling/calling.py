"""Synthetic features back to genotypes (DESIGN 2): decode, call {0, 1, 2}.

Calling methods are found by name in `CALLERS`, each `fn(dosages [N, S] float, codec) -> int8
[N, S]` (`codec` is the dataset's `GeneCodec`, or None for the methods that do not read it):

- `round`: the nearest integer, clipped to [0, 2].
- `frequency`: per variant, genotype counts matched to the decoded expectation, assigned by rank.
  With p_i = clip(d_i / 2, 0, 1) for person i's decoded dosage d_i, each person is taken as
  Binomial(2, p_i), so the expected allele count is A = sum_i 2 p_i and the expected number of
  homozygous ALT calls is E2 = sum_i p_i^2. The calls get A* = round(A) ALT alleles (so the allele
  frequency matches the decoded one, clipped to [0, 2], to 1/(4N)) and n2 = round(E2) twos, clipped
  to the range A* allows ([max(0, A* - N), floor(A* / 2)]); then n1 = A* - 2 n2 ones and
  n0 = N - n1 - n2 zeros. The n2 people with the highest decoded dosage get 2, the next n1 get 1,
  the rest 0 (ties broken by row order), so calls stay ordered like the dosages and the LD carried
  by the dosages is kept. Rounding instead shrinks rare variants towards 0: a SNP with frequency
  0.05 decodes to dosages near 0.1 that all round to 0.
- `hybrid`: `frequency` where the codec keeps at least `HYBRID_KEPT` of the variant's variance
  (`GeneCodec.kept_variance_fraction`), `round` elsewhere. Where the codec is (nearly) lossless the
  dosage ranks people by their own genotype, so matching counts by rank fixes the frequency without
  inventing LD; where it keeps little, every variant's rank follows the same few leading components,
  and `frequency` would hand the rare alleles of many variants to the same people (LD r 0.34 on
  LCT's round trip against 0.76 for `round`). Its homozygous count takes each person's genotype
  spread from what the codec leaves out (`GeneCodec.residual_variance`) instead of Binomial(2,
  p_i): a decoded 1.0 from a lossless codec is a heterozygote, not a quarter of a homozygote (with
  the binomial count, LCT's round trip read AA 0.79 instead of 0.66).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genodiff_jax.data.codec import GeneCodec, to_calls
from genodiff_jax.registry import Registry

CallFn = Callable[[np.ndarray, "GeneCodec | None"], np.ndarray]

# `fn(dosages [N, S], codec) -> calls int8 [N, S]`, found by name.
CALLERS: Registry[CallFn] = Registry("calling method")
register_caller = CALLERS.register

_CHUNK_ELEMENTS = 1 << 24  # variants are called in column blocks of about this many dosages

# Chosen by measurement (README, "The representation's ceiling"): real people through the codec and
# back keep LD with `round` (LD r 0.76 on LCT, real 0.80) and lose it with `frequency` (0.34);
# `hybrid` keeps it and round's NNAA (LCT: LD r 0.760 for both, AA 0.656 vs 0.657) and, where the
# codec is lossless, matches frequencies that `round` loses (AF r 0.998 against 0.986 on the
# sparse panel).
DEFAULT_CALLING = "hybrid"


def get_caller(name: str) -> CallFn:
    """The registered calling method `name` ("round", "frequency" or "hybrid")."""
    return CALLERS[name]


@register_caller("round")
def round_calls(dosages: np.ndarray, codec: GeneCodec | None = None) -> np.ndarray:
    """rint(dosage) clipped to {0, 1, 2}."""
    return to_calls(dosages)


def frequency_counts(dosages: np.ndarray,
                     residual: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n2, n1) per variant [S] for `frequency` calling (see the module docstring).

    Each person's genotype has mean d_i (the decoded dosage, clipped to [0, 2]) and variance v_i,
    so P(2) = (d_i^2 - d_i + v_i) / 2, kept where a law on {0, 1, 2} with that mean can have it
    ([max(0, d_i - 1), d_i / 2]). `residual` None takes v_i = d_i (1 - d_i / 2), Binomial(2, p_i),
    hence P(2) = p_i^2; `residual` [S] (the codec's left-out variance per variant) takes v_i from
    it, so a variant the codec gives back exactly keeps its heterozygotes."""
    d = np.clip(np.asarray(dosages, np.float64), 0.0, 2.0)
    n = d.shape[0]
    alt = np.floor(d.sum(axis=0) + 0.5).astype(np.int64)
    if residual is None:
        p2 = np.square(d / 2.0)
    else:
        p2 = np.clip((d * d - d + np.asarray(residual, np.float64)) / 2.0,
                     np.maximum(d - 1.0, 0.0), d / 2.0)
    n2 = np.floor(p2.sum(axis=0) + 0.5).astype(np.int64)
    n2 = np.clip(n2, np.maximum(alt - n, 0), alt // 2)
    return n2, alt - 2 * n2


@register_caller("frequency")
def frequency_calls(dosages: np.ndarray, codec: GeneCodec | None = None, *,
                    residual: np.ndarray | None = None) -> np.ndarray:
    """Per-variant genotype counts matched to the decoded expectation, assigned by dosage rank
    (`residual`: see `frequency_counts`)."""
    dosages = np.asarray(dosages)
    n, s = dosages.shape
    calls = np.empty((n, s), np.int8)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for lo in range(0, s, step):
        d = dosages[:, lo:lo + step]
        n2, n1 = frequency_counts(d, None if residual is None else residual[lo:lo + step])
        # rank[i, v] = position of person i when variant v's dosages are sorted high to low.
        order = np.argsort(-d, axis=0, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n)[:, None], axis=0)
        calls[:, lo:lo + step] = np.where(rank < n2, 2, np.where(rank < n2 + n1, 1, 0))
    return calls


HYBRID_KEPT = 0.99  # `hybrid` calls a variant by `frequency` from this kept-variance share up


@register_caller("hybrid")
def hybrid_calls(dosages: np.ndarray, codec: GeneCodec | None = None) -> np.ndarray:
    """`frequency` on the variants the codec keeps (share >= HYBRID_KEPT), with the codec's
    left-out variance as each genotype's spread, `round` on the rest."""
    if codec is None:
        raise ValueError("hybrid calling needs the dataset's codec")
    dosages = np.asarray(dosages)
    share, variance = codec.variance_shares()  # one pass for the mask and the residual
    kept = share >= HYBRID_KEPT
    if kept.shape != dosages.shape[1:]:
        raise ValueError(f"{dosages.shape[1]} dosage columns, but the codec has {kept.size} "
                         "variants")
    calls = round_calls(dosages)
    residual = ((1.0 - share) * variance)[kept]  # GeneCodec.residual_variance at the kept SNPs
    calls[:, kept] = frequency_calls(dosages[:, kept], residual=residual)
    return calls


def call_genotypes(dosages: np.ndarray, method: str = DEFAULT_CALLING,
                   codec: GeneCodec | None = None) -> np.ndarray:
    """Decoded dosages [N, S] -> calls int8 [N, S] in {0, 1, 2} by the method `method` (`codec`:
    the dataset's codec, which `hybrid` reads)."""
    return get_caller(method)(dosages, codec)


def decode_features(features: np.ndarray, codec: GeneCodec) -> np.ndarray:
    """Features [N, G, K] -> expected dosages [N, S], padded slots set to 0 first."""
    features = np.where(codec.mask, np.asarray(features, np.float32), 0.0)
    return codec.decode(features)


def features_to_calls(features: np.ndarray, codec: GeneCodec,
                      calling: str = DEFAULT_CALLING) -> tuple[np.ndarray, np.ndarray]:
    """Sampled features [N, G, K] -> (the features with padded slots zeroed, float32; their
    genotype calls int8 [N, S] by the method `calling`)."""
    features = np.asarray(features, np.float32)
    if features.shape[1:] != codec.feature_shape:
        raise ValueError(f"features {features.shape[1:]} do not match the codec's "
                         f"{codec.feature_shape}")
    features = np.where(codec.mask, features, 0.0).astype(np.float32)
    return features, call_genotypes(decode_features(features, codec), calling, codec)
