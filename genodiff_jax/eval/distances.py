"""Exact nearest-neighbour distances between two sets, in row blocks (bounded memory).

Metrics, found by name in `METRICS`:

- `euclidean` on float features (any trailing shape, flattened): ||a||^2 + ||b||^2 - 2 a.b in
  float64 with one BLAS matmul per block pair; the winning pair is then recomputed directly as
  ||a - b||, so the returned distance is as exact as `scipy.spatial.distance.cdist` (and 0 for an
  exact copy, which the expansion alone would give as ~1e-8).
- `hamming` on genotype calls {0, 1, 2}: the number of differing calls,
  S - sum_k onehot_k(a).onehot_k(b), one float32 matmul over the [n, 3S] one-hot encodings per
  block pair. Every partial sum is an integer <= S < 2^24, so float32 is exact. `normalize=True`
  divides by S (the share of differing calls, as cdist's `hamming`).

Never the N x M matrix: a [block, block] distance tile, one block of `a` encoded, and `b` encoded
(kept whole only while that is at most 256 MiB, else re-encoded block by block), so 10,000 x 10,000
people fit in a few hundred MiB whatever S is. Ties go to the lowest index of `b`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

_BLOCK_BYTES = 1 << 25  # encoded bytes per block (32 MiB) when block_size is not given
_MIN_BLOCK, _MAX_BLOCK = 64, 2048


@dataclasses.dataclass(frozen=True)
class Metric:
    """encode(x [n, ...]) -> block encoding; tile(enc_a, enc_b) -> a monotone transform of the
    distance [na, nb]; finish(tile values, a rows, b rows) -> exact distances."""

    encode: Callable[[np.ndarray], tuple]
    tile: Callable[[tuple, tuple], np.ndarray]
    finish: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    row_bytes: Callable[[int], int]


def _as_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def _euclid_encode(x: np.ndarray) -> tuple:
    x = np.asarray(x, np.float64)
    return x, np.einsum("ij,ij->i", x, x)


def _euclid_tile(a: tuple, b: tuple) -> np.ndarray:
    d2 = a[1][:, None] + b[1][None, :] - 2.0 * (a[0] @ b[0].T)
    return np.maximum(d2, 0.0)  # squared distance: argmin is the same, sqrt deferred


def _euclid_finish(_: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _check_calls(x: np.ndarray) -> None:
    if x.size and (x.min() < 0 or x.max() > 2
                   or (not np.issubdtype(x.dtype, np.integer) and np.any(x != np.rint(x)))):
        raise ValueError("hamming distance expects genotype calls in {0, 1, 2}")


def _hamming_encode(x: np.ndarray) -> tuple:
    _check_calls(x)
    if x.shape[1] >= 1 << 24:
        raise ValueError("hamming distance: too many sites for exact float32 counts")
    onehot = np.zeros((*x.shape, 3), np.float32)
    np.put_along_axis(onehot, x[:, :, None].astype(np.intp), 1.0, axis=2)  # faster than ==
    return (onehot.reshape(x.shape[0], -1),)


def _hamming_tile(a: tuple, b: tuple) -> np.ndarray:
    # Fewer matches = larger distance; the count S - matches is formed in `finish`.
    return -(a[0] @ b[0].T)


def _hamming_finish(tile_min: np.ndarray, a: np.ndarray, _: np.ndarray) -> np.ndarray:
    return a.shape[1] + tile_min.astype(np.float64)


METRICS: dict[str, Metric] = {
    "euclidean": Metric(_euclid_encode, _euclid_tile, _euclid_finish, lambda d: 8 * d),
    "hamming": Metric(_hamming_encode, _hamming_tile, _hamming_finish, lambda d: 12 * d),
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown distance {name!r}; known: {sorted(METRICS)}")
    return METRICS[name]


def auto_block_size(n_features: int, metric: str) -> int:
    """Rows per block so that one block's encoding is about 32 MiB."""
    rows = _BLOCK_BYTES // max(get_metric(metric).row_bytes(n_features), 1)
    return int(np.clip(rows, _MIN_BLOCK, _MAX_BLOCK))


def _prepare(a: np.ndarray, b: np.ndarray | None, metric: str, exclude_self: bool | None,
             block_size: int | None) -> tuple[np.ndarray, np.ndarray, bool, int]:
    same = b is None
    a = _as_rows(a)
    b = a if same else _as_rows(b)
    exclude_self = same if exclude_self is None else exclude_self
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if exclude_self and a.shape[0] != b.shape[0]:
        raise ValueError("exclude_self needs the two sets to hold the same rows in the same order")
    if min(a.shape[0], b.shape[0]) - int(bool(exclude_self)) < 1:
        raise ValueError("no candidate neighbours")
    block = block_size or auto_block_size(a.shape[1], metric)
    if block < 1:
        raise ValueError(f"block_size must be positive, got {block}")
    return a, b, bool(exclude_self), block


def _scan(a: np.ndarray, b: np.ndarray, m: Metric, exclude_self: bool, block: int, both: bool):
    """Running minima over block tiles: per row of a (and, with `both`, per row of b) the best tile
    value and its index. Strict < over increasing indices keeps the lowest index on ties."""
    run_a, idx_a = np.full(a.shape[0], np.inf), np.zeros(a.shape[0], np.int64)
    run_b, idx_b = np.full(b.shape[0], np.inf), np.zeros(b.shape[0], np.int64)
    # Keep b encoded once when that is cheap; otherwise re-encode its blocks per row block of a.
    cache = b.shape[0] * m.row_bytes(b.shape[1]) <= 8 * _BLOCK_BYTES
    b_blocks = [m.encode(b[j:j + block]) for j in range(0, b.shape[0], block)] if cache else None
    for i in range(0, a.shape[0], block):
        enc_a = m.encode(a[i:i + block])
        for j in range(0, b.shape[0], block):
            tile = m.tile(enc_a, b_blocks[j // block] if cache else m.encode(b[j:j + block]))
            if exclude_self:
                k = np.arange(max(i, j), min(i + tile.shape[0], j + tile.shape[1]))
                tile[k - i, k - j] = np.inf
            for axis, run, idx, lo, off in ((1, run_a, idx_a, i, j), (0, run_b, idx_b, j, i)):
                if axis == 0 and not both:
                    continue
                arg = tile.argmin(axis=axis)
                val = np.take_along_axis(tile, np.expand_dims(arg, axis), axis).squeeze(axis)
                seg, seg_idx = run[lo:lo + len(val)], idx[lo:lo + len(val)]  # views
                better = val < seg
                seg[better] = val[better]
                seg_idx[better] = arg[better] + off
    return run_a, idx_a, run_b, idx_b


def _finish(m: Metric, run: np.ndarray, idx: np.ndarray, x: np.ndarray, y: np.ndarray,
            block: int, metric: str, normalize: bool) -> np.ndarray:
    """Exact distances from x's rows to their chosen rows y[idx], block by block."""
    dist = np.empty(x.shape[0])
    for i in range(0, x.shape[0], block):
        dist[i:i + block] = m.finish(run[i:i + block], x[i:i + block], y[idx[i:i + block]])
    if normalize and metric == "hamming":
        dist /= x.shape[1]
    return dist


def nearest_neighbors(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    metric: str = "euclidean",
    exclude_self: bool | None = None,
    block_size: int | None = None,
    normalize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `a`, the distance to and index of its nearest row of `b`.

    `b=None` means `b = a` with self-matches excluded. `exclude_self=True` with a given `b` requires
    len(a) == len(b) and skips the pair (i, i) (the same people in the same order). Returns
    (distance float64 [Na], index int64 [Na]). `normalize` divides Hamming counts by S.
    """
    a, b, exclude_self, block = _prepare(a, b, metric, exclude_self, block_size)
    m = get_metric(metric)
    run, idx, _, _ = _scan(a, b, m, exclude_self, block, both=False)
    return _finish(m, run, idx, a, b, block, metric, normalize), idx


def mutual_nearest_neighbors(
    a: np.ndarray,
    b: np.ndarray,
    *,
    metric: str = "euclidean",
    block_size: int | None = None,
    normalize: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Both directions in one pass over the tiles: ((dist, idx) a -> b, (dist, idx) b -> a)."""
    a, b, _, block = _prepare(a, b, metric, False, block_size)
    m = get_metric(metric)
    run_a, idx_a, run_b, idx_b = _scan(a, b, m, False, block, both=True)
    return ((_finish(m, run_a, idx_a, a, b, block, metric, normalize), idx_a),
            (_finish(m, run_b, idx_b, b, a, block, metric, normalize), idx_b))


def pairwise_distances(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    metric: str = "euclidean",
    normalize: bool = False,
) -> np.ndarray:
    """The full [Na, Nb] distance matrix: for small (subsampled) sets only."""
    a = _as_rows(a)
    b = a if b is None else _as_rows(b)
    m = get_metric(metric)
    tile = m.tile(m.encode(a), m.encode(b))
    if metric == "euclidean":
        return np.sqrt(tile)
    dist = a.shape[1] + tile.astype(np.float64)
    return dist / a.shape[1] if normalize else dist


def subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of x drawn without replacement, kept in order (x itself when n >= len(x))."""
    if n >= len(x):
        return x
    return x[np.sort(rng.choice(len(x), n, replace=False))]


def distribution_summary(values: np.ndarray, quantiles=(0.05, 0.5)) -> dict:
    """{"mean", "q05", "q50", ...}: the mean and the given quantiles of a distance distribution."""
    values = np.asarray(values)
    qs = np.quantile(values, quantiles)
    return {"mean": float(values.mean()),
            **{f"q{round(100 * q):02d}": float(v) for q, v in zip(quantiles, qs)}}
