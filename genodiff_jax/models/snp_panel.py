"""`snp_panel`: the `snp_unet` denoiser that also reads a reference panel and learns when and where
to copy from it (issue 26; Li & Stephens 2003's copying model, learned instead of fixed).

Input: `snp_unet`'s ({"tokens" [B, H, L], "pos", "af", ...}) plus "panel": int8 [B, R, L], R
reference rows at the same SNPs (haplotypes for haplotype tokens, dosages for dosage tokens; drawn
by `data.panels`, never the person's own). Output: logits [B, H, L, V], log probabilities of a
mixture with R + 1 components at each SNP of each row h:

    p(v) = w_0 softmax(net)(v) + sum_r w_r ((1 - eps) [panel_r = v] + eps softmax(net)(v))

- component 0 is `snp_unet`'s own distribution (its trunk and head, population prior and all);
- component r copies panel row r, with a learned mutation rate eps (per SNP and row, from the
  trunk's state; it starts near 2 %). A mutation draws from the network's distribution, not
  uniformly as in Li & Stephens: with uniform mutations, LCT's synthetic people carried 20.9 ALT
  alleles a person at SNPs of training frequency below 1 %, against 10.8 for real held-out people
  and 11.3 for the masked model's (issue 26; R = 16 random rows are far from a person, so the
  learned eps is not small);
- the weights w are a softmax over R + 1 scores, one set per patch of `patch` SNPs (which row a
  person copies changes over hundreds of SNPs, so a patch's SNPs share it, at 1 / patch of the
  cost). A panel row's score is linear in how well it agrees with the row's tokens known so far
  around the patch (a copying model's evidence, below), with coefficients computed from the
  trunk's state there (so the network decides how much a long match counts where); the score of
  component 0 comes from that state too.

With `row_owner`, a panel row's score also sees whether it was drawn for this token row: a
neighbours panel (`data.panels`) interleaves the rows nearest each of a person's H rows (their
anchors', generating), so row r belongs to token row r mod H. Without it a haplotype cannot tell
its own neighbourhood from its other haplotype's and may switch between the two (issue 26: on
LCT one exact sample in ten sits 50 or more alleles from every training haplotype, real ones 7).

How a panel row agrees, from the tokens alone (no parameters, no gradient), per patch: on each
side, exclusive of the patch, the known tokens that match back to the nearest patch with a
mismatch, that patch's matches included (the run a copy would continue), and the matches and
mismatches within `scales` SNPs; in the patch itself its matches and mismatches. All counts
enter as log(1 + count). Cost: one pass over [B, H, R, L] (comparing), the copy weights spread
over each patch's SNPs and panel values as one product over the rows, the running counts as
log-depth scans, and the rest at L / patch, on top of `snp_unet`; linear in the window, no
attention over L.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from genodiff_jax.models.registry import register_model
from genodiff_jax.models.snp_unet import SNPUNet


def _shift(a: jax.Array, k: int) -> jax.Array:
    """`a` moved k places right along the last axis, zeros coming in."""
    if k >= a.shape[-1]:
        return jnp.zeros_like(a)
    pad = [(0, 0)] * (a.ndim - 1) + [(k, 0)]
    return jnp.pad(a[..., :a.shape[-1] - k], pad)


def _left_evidence(match: jax.Array, mismatch: jax.Array,
                   scales: tuple[int, ...]) -> list[jax.Array]:
    """Evidence left of each SNP, exclusive of it, 1 + 2 len(scales) counts [..., L]: matches
    back to the nearest mismatch, then matches and mismatches within each scale. Running sums
    and maxima only (no gather): M counts the matches before l, and since it never falls, its
    value at the latest mismatch before l is the running maximum of M over the mismatches."""
    def running(op, a: jax.Array) -> jax.Array:  # a log-depth scan: XLA's CPU cumsum and
        return jax.lax.associative_scan(op, a, axis=a.ndim - 1)  # cummax took 2x the head's time

    M = running(jnp.add, match) - match  # matches before l
    X = running(jnp.add, mismatch) - mismatch
    at_mismatch = jnp.where(mismatch > 0, M, 0)
    last = _shift(running(jnp.maximum, at_mismatch), 1)
    out = [M - last]
    for k in scales:
        out.append(M - _shift(M, k))
        out.append(X - _shift(X, k))
    return out


def panel_evidence(tokens_BxHxL: jax.Array, panel_BxRxL: jax.Array, mask_id: int,
                   scales: tuple[int, ...], patch: int = 1) -> list[jax.Array]:
    """How each panel row agrees with each token row around each patch of `patch` SNPs: known
    tokens that match and that differ are counted per patch, and from those counts, 2 (1 + 2
    len(scales)) + 2 features float32 [B, H, R, L / patch], all log(1 + count): both sides'
    `_left_evidence` (`scales` in patches), then the patch's own matches and mismatches. A list,
    not one stacked array: the copying score is a weighted sum of them, which XLA fuses without
    storing the stack."""
    tokens = tokens_BxHxL.astype(jnp.int32)[:, :, None, :]
    panel = panel_BxRxL.astype(jnp.int32)[:, None, :, :]
    known = tokens != mask_id
    match = (known & (tokens == panel)).astype(jnp.int32)  # [B, H, R, L]
    mismatch = (known & (tokens != panel)).astype(jnp.int32)
    if patch > 1:
        per_patch = match.shape[:-1] + (match.shape[-1] // patch, patch)
        match = match.reshape(per_patch).sum(axis=-1)
        mismatch = mismatch.reshape(per_patch).sum(axis=-1)
    left = _left_evidence(match, mismatch, scales)
    right = [a[..., ::-1] for a in _left_evidence(match[..., ::-1], mismatch[..., ::-1], scales)]
    return [jax.lax.stop_gradient(jnp.log1p(a.astype(jnp.float32)))
            for a in left + right + [match, mismatch]]


@register_model("snp_panel")
class SNPPanel(SNPUNet):
    """`snp_unet` with a copying head over a reference panel ({..., "panel"}, t, y) -> logits."""

    REPRESENTATION: ClassVar[str] = "panel"
    TEST_SIZES: ClassVar[dict] = dict(SNPUNet.TEST_SIZES, copy_width=8, scales=(4, 16))

    copy_width: int = 32  # features of the SNP's state the copying scores are computed from
    scales: tuple[int, ...] = (8, 64, 512)  # SNPs counted on each side
    row_owner: bool = False  # the score sees whether panel row r was drawn for token row h

    @nn.compact
    def __call__(self, x: dict, t_B: jax.Array, y_B: jax.Array, train: bool = False) -> jax.Array:
        if "panel" not in x:
            raise ValueError("snp_panel: the input needs 'panel', int [B, R, L] reference rows "
                             "(data.panels)")
        snp, per_snp = self.trunk(x, t_B, y_B, train)
        net = jax.nn.log_softmax(self.head(x, y_B, snp, per_snp), axis=-1)  # [B, H, L, V]
        tokens, panel = x["tokens"], x["panel"]
        B, H, L = tokens.shape
        R, P, V = panel.shape[1], self.patch, self.vocab_size
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        state = nn.silu(nn.Dense(self.copy_width, name="copy_state", **kw)(
            jnp.concatenate([per_snp, snp], axis=-1)))  # [B, L, W]
        patch_state = state.reshape(B, L // P, P, -1).mean(axis=2)  # [B, L / P, W]

        scales = tuple(max(1, k // P) for k in self.scales)
        evidence = panel_evidence(tokens, panel, V, scales, P)  # F x [B, H, R, L / P]
        if self.row_owner:  # 1 where row r was drawn for token row h (r mod H == h)
            owner = jnp.arange(R)[None, :] % H == jnp.arange(H)[:, None]  # [H, R]
            evidence.append(jnp.broadcast_to(owner[None, :, :, None].astype(jnp.float32),
                                             evidence[0].shape))
        # a panel row's score in a patch: its evidence weighed by coefficients from the patch's
        # state, one set per token row (linear in the evidence, as a copying model's log
        # posterior is in its match counts); the network's own component scores from the state
        weigh = nn.Dense(H * (len(evidence) + 1), name="copy_weights", **kw)(patch_state)
        weigh = weigh.reshape(B, L // P, H, -1).transpose(3, 0, 2, 1).astype(jnp.float32)
        copy_score = sum(e * w[:, :, None] for e, w in zip(evidence, weigh[:-1]))
        log_w = jax.nn.log_softmax(jnp.concatenate([weigh[-1][:, :, None], copy_score], axis=2),
                                   axis=2)  # [B, H, R + 1, L / P]

        def per_snp_of(a: jax.Array) -> jax.Array:  # [..., L / P] -> [..., L, 1]
            return jnp.repeat(a, P, axis=-1)[..., None]

        log_own = per_snp_of(log_w[:, :, 0])
        log_any_copy = per_snp_of(jax.nn.logsumexp(log_w[:, :, 1:], axis=2))  # log(1 - w_own)
        eps_logit = nn.Dense(H, name="mutation", **kw)(state).transpose(0, 2, 1) - 4.0
        log_eps = jax.nn.log_sigmoid(eps_logit.astype(jnp.float32))[..., None]  # [B, H, L, 1]
        log_keep = jax.nn.log_sigmoid(-eps_logit.astype(jnp.float32))[..., None]  # 1 - eps
        # the copy weight on each value [B, H, L, V]: a product over the panel's rows, per patch
        copied = jnp.einsum("bhrn,brnk->bhnk", jnp.exp(log_w[:, :, 1:]),
                            jax.nn.one_hot(panel, V, dtype=jnp.float32).reshape(
                                B, R, L // P, P * V)).reshape(B, H, L, V)
        # log of: (w_own + eps (1 - w_own)) p_net(v) + (1 - eps) copied(v)
        log_net_weight = jnp.logaddexp(log_own, log_eps + log_any_copy)
        parts = jnp.stack([log_net_weight + net,
                           log_keep + jnp.log(jnp.maximum(copied, 1e-30))])
        return jax.nn.logsumexp(parts, axis=0)  # [B, H, L, V]
