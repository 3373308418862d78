"""Reference panels for the `snp_panel` denoiser (issue 26): for each person, R reference rows
(haplotypes, or dosage rows) from a pool of people at the same SNPs.

- Training (`data.views.panel_view`): the pool is the training split. A person's own rows never
  reach their panel (leave-one-out), else the network would learn to copy the answer; a held-out
  person's panel comes from the training split as well, so validation measures what sampling
  does.
- Sampling and imputation (`draw_panels`): the pool is the training split, or any phased cohort at
  the same SNPs.

`panel_from = "class"` draws from the person's own class (the population a generated person
belongs to), "any" from everyone. Rows are drawn without replacement while the pool allows, each
person's panel independently; a class with no one else to copy from takes everyone else.

`panel_from = "neighbours"` gives a person the rows nearest their own (`best_matching`, their own
left out): the few haplotypes a real person shares long stretches with (on LCT a held-out
person's longest run identical to a training haplotype has median 6311 of 7643 SNPs; among 16
random rows of their class it is far shorter). A generated person has no rows of their own yet,
so each of their haplotypes reads the neighbours of an anchor, a haplotype of a pool person of
their class drawn at random (a different person for each), the anchor's rows left out
(`neighbour_panels`): the panel real haplotypes of those neighbourhoods read in training.
Nearness is counted over the whole region, not per window, and how much a matching token counts
is `panel_match` (`MATCHES`): "agreement" counts every match 1; "rare_sharing" counts a match on a
value 1 / its frequency among the rows. Sharing a rare allele is the mark of recent common
ancestry; sharing the common one is not, and counted alike they make "hubs" of the haplotypes that
carry the most common alleles: on the demo cohort the 10 % most-picked rows filled 29 % of the
neighbours panels and a class's panels carried its minority alleles 9-23 % too rarely (AF 0.05-0.2:
0.083 against 0.108 for CHB), YRI's drawing a fifth of their rows from CEU and CHB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genodiff_jax.registry import Registry

# panel_match: rows [P, S], values [V] -> how much a match on each value at each SNP counts [V, S]
MATCHES: Registry[Callable[[np.ndarray, np.ndarray], np.ndarray]] = Registry("panel match")


@MATCHES.register("agreement")
def agreement(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Every matching token counts 1."""
    return np.ones((len(values), rows.shape[1]), np.float32)


@MATCHES.register("rare_sharing")
def rare_sharing(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A match on value v at a SNP counts 1 / (v's frequency among the rows), at most the row
    count (a value no row carries)."""
    freq = np.stack([(rows == v).mean(axis=0) for v in values])
    return (1.0 / np.maximum(freq, 1.0 / len(rows))).astype(np.float32)


def panel_rows(tokens: np.ndarray) -> np.ndarray:
    """A pool's reference rows, int8 [n H, S]: each person's haplotypes (or dosage row) in turn."""
    tokens = np.asarray(tokens, np.int8)
    return tokens.reshape(-1, tokens.shape[-1]) if tokens.ndim == 3 else tokens


def draw_panels(labels: np.ndarray, pool_labels: np.ndarray, rows_per_person: int, size: int,
                rng: np.random.Generator, *, panel_from: str = "class",
                pool_person: np.ndarray | None = None) -> np.ndarray:
    """Indices int64 [N, size] into the pool's `panel_rows` for people of class `labels` [N].

    The pool holds len(pool_labels) people of `rows_per_person` rows each. `pool_person` [N]
    (optional) says which pool person each one is (-1: none), whose rows are left out."""
    if panel_from not in ("class", "any"):  # "neighbours" is `neighbour_panels`
        raise ValueError(f"draw_panels: panel_from must be class or any, got {panel_from!r}")
    labels = np.asarray(labels)
    pool_labels = np.asarray(pool_labels)
    if len(pool_labels) == 0:
        raise ValueError("the reference panel's pool is empty")
    owner = np.repeat(np.arange(len(pool_labels)), rows_per_person)  # pool row -> person
    row_class = pool_labels[owner]
    everyone = np.arange(len(owner))
    out = np.empty((len(labels), size), np.int64)
    for i, label in enumerate(labels):
        skip = -1 if pool_person is None else int(pool_person[i])
        candidates = everyone[(owner != skip) & ((row_class == label) | (panel_from == "any"))]
        if len(candidates) == 0:
            candidates = everyone[owner != skip]
        if len(candidates) == 0:
            raise ValueError("the reference panel's pool has no one but the person themselves")
        out[i] = rng.choice(candidates, size, replace=len(candidates) < size)
    return out


def windowed_panels(rows: np.ndarray, index: np.ndarray, plan) -> np.ndarray:
    """The panels of `index` [N, R] (into `rows` [P, S]) cut as `data.views.cut_windows` cuts
    tokens: int8 [N W, R, L], window-major within a person, padding 0."""
    N, R = index.shape
    W, L, real = len(plan.starts), plan.length, plan.real
    out = np.zeros((N, W, R, L), np.int8)
    for w, start in enumerate(plan.starts):
        out[:, w, :, :real] = rows[:, start:start + real][index]
    return out.reshape(N * W, R, L)


def best_matching(rows: np.ndarray, known: np.ndarray, size: int, unknown: int = -1,
                  leave_out: np.ndarray | None = None, match: str = "agreement") -> np.ndarray:
    """Indices int64 [N, size] into `rows` [P, S]: for each person of `known` (int8 [N, H, S],
    `unknown` where not observed), the rows that agree best with the observed tokens (each match
    counted as `MATCHES[match]` says), size // H for each of the person's H token rows in turn (a
    reference panel for imputation, where the rows closest to what is seen are the ones to copy
    from). `leave_out` int [N, k]: rows never picked for each person (their own)."""
    known = np.asarray(known)
    N, H, S = known.shape
    values = np.unique(rows)
    weights = MATCHES[match](rows, values)
    agree = np.zeros((N * H, rows.shape[0]), np.float32)
    flat = known.reshape(N * H, S)
    for v, weight in zip(values, weights):  # matches of each value, as one product per value
        agree += ((flat == v) * weight).astype(np.float32) @ (rows == v).astype(np.float32).T
    if leave_out is not None:
        agree = agree.reshape(N, H, -1)
        np.put_along_axis(agree, np.asarray(leave_out)[:, None, :], -np.inf, axis=2)
        agree = agree.reshape(N * H, -1)
    ranked = np.argsort(-agree, axis=1, kind="stable").reshape(N, H, -1)
    per_row = -(-size // H)
    picked = ranked[:, :, :per_row].transpose(0, 2, 1).reshape(N, -1)  # alternate the H rows
    return picked[:, :size].astype(np.int64)


def own_rows(people: np.ndarray, rows_per_person: int) -> np.ndarray:
    """The `panel_rows` indices int64 [N, rows_per_person] of pool people `people` [N]."""
    return np.asarray(people)[:, None] * rows_per_person + np.arange(rows_per_person)


def neighbour_panels(pool: np.ndarray, labels: np.ndarray, pool_labels: np.ndarray, size: int,
                     rng: np.random.Generator, match: str = "agreement") -> np.ndarray:
    """Indices int64 [N, size] into `panel_rows(pool)` for generated people of class `labels`
    [N] (`panel_from = "neighbours"`): each of a person's token rows draws an anchor, a random row
    of a pool person of their class (anyone where the class has too few), the rows of one person
    from different people; the person reads the rows nearest each anchor row in turn (size / rows
    a person each), that anchor's own rows left out. One anchor person for both haplotypes would
    copy that person's neighbours' *pairs*, and a training person would find themselves whole in
    the synthetic cohort (membership)."""
    pool, pool_labels = np.asarray(pool), np.asarray(pool_labels)
    if len(pool_labels) < 2:
        raise ValueError("a neighbours panel needs a pool of at least 2 people")
    rows = panel_rows(pool)
    per_person = rows.shape[0] // len(pool_labels)
    everyone = np.arange(len(pool_labels))
    anchors = np.empty((len(labels), per_person), np.int64)
    for i, label in enumerate(np.asarray(labels)):
        of_class = everyone[pool_labels == label]
        choices = of_class if len(of_class) >= per_person else everyone
        anchors[i] = rng.choice(choices, per_person, replace=len(choices) < per_person)
    anchor_rows = anchors * per_person + rng.integers(per_person, size=anchors.shape)
    per_anchor = -(-size // per_person)
    picked = best_matching(rows, rows[anchor_rows.reshape(-1)][:, None, :], per_anchor,
                           leave_out=own_rows(anchors.reshape(-1), per_person), match=match)
    # Alternate the anchors' rows, as best_matching alternates a person's.
    picked = picked.reshape(len(labels), per_person, per_anchor).transpose(0, 2, 1)
    return picked.reshape(len(labels), -1)[:, :size]
