"""A 1-D U-Net over a window of SNP tokens, for masked diffusion (DESIGN 6).

Input: {"tokens": int [B, H, L] (H = 2 haplotypes in {0, 1}, or 1 dosage in {0, 1, 2}; the value
`vocab_size` is MASK), "pos": float32 [B, L] (base pairs from the region's start), "af": float32
[B, L] (the SNP's allele frequency in the training split)}, t [B] in [0, 1], y [B]. Output: logits
[B, H, L, vocab_size].

Each SNP becomes a small vector (its tokens one-hot for both haplotypes, its training allele
frequency, sinusoidal features of its distance in base pairs from the window's first SNP, and the
log gap to the previous SNP: LD decays with base pairs, not with index); `patch` consecutive SNPs
are merged into one position, and an ADM U-Net (the CNN denoiser's residual blocks with FiLM
time + class conditioning, average pool down-sampling, self-attention at the coarsest level) runs
over the patches. Its receptive field covers the whole window at the coarsest level, so a window of
8192 SNPs costs about as much as 2048 positions of a small CNN. The two haplotypes of a person are
modelled jointly: they share the person's ancestry (admixed people carry it on both), which two
independent draws would lose. The output head is per SNP: the U-Net's patch state, unpacked to each
SNP, next to that SNP's own vector (a skip), so the logits of a SNP see its frequency and neighbours
directly.

With `population_prior` the logits are the network's output plus the log probabilities of each
token under the person's population: haplotype alleles Bernoulli(q), dosages Hardy-Weinberg
((1 - q)^2, 2q(1 - q), q^2), q the smoothed training frequency of the person's class at that SNP
(x["class_af"]), or of everyone for the null label (x["pooled_af"]: unconditional training and
guidance). The output layer starts at zero, so an untrained network is exactly per-population
independent sites, and the network learns only what the population does not already say (LD,
admixture); the label reaches every SNP without going through FiLM.
"""

from __future__ import annotations

import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from genodiff_jax.models.cnn_unet import AttentionBlock, ResBlock
from genodiff_jax.models.embeddings import ClassEmbedding, TimestepEmbedding
from genodiff_jax.models.ops import Layered
from genodiff_jax.models.registry import register_model


def distance_features(pos_BxL: jax.Array, num: int, shortest_bp: float = 50.0,
                      longest_bp: float = 2e6) -> jax.Array:
    """[sin | cos] of the distance from the window's first SNP at `num` // 2 wavelengths spread
    geometrically over [shortest_bp, longest_bp], plus log(1 + gap to the previous SNP / 1 kb):
    float32 [B, L, num + 1]."""
    d = (pos_BxL - pos_BxL[:, :1]).astype(jnp.float32)
    waves = jnp.geomspace(shortest_bp, longest_bp, num // 2).astype(jnp.float32)
    angle = 2 * math.pi * d[..., None] / waves
    gap = jnp.diff(d, axis=1, prepend=d[:, :1])
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle),
                            jnp.log1p(jnp.maximum(gap, 0.0) / 1000.0)[..., None]], axis=-1)


@register_model("snp_unet")
class SNPUNet(Layered):
    """Masked-diffusion denoiser over SNP tokens: ({"tokens", "pos"}, t, y) -> logits."""

    REPRESENTATION: ClassVar[str] = "tokens"
    TEST_SIZES: ClassVar[dict] = dict(snp_width=8, channels=(16, 32), num_res_blocks=1,
                                      num_heads=2, head_channels=8, num_groups=4, patch=2)

    num_classes: int
    vocab_size: int = 2
    patch: int = 4  # SNPs merged into one U-Net position
    snp_width: int = 32  # features of one SNP before patching
    distance_dim: int = 16
    channels: tuple[int, ...] = (64, 128, 192)  # per level; each level halves the length
    num_res_blocks: int = 2
    num_heads: int = 4
    head_channels: int = 32
    num_groups: int = 16
    dropout: float = 0.1
    attention_impl: str | None = None
    population_prior: bool = False  # logits += log p(token | the person's population)
    population_input: bool = False  # each SNP's vector holds q of the person's population

    def length_multiple(self) -> int:
        """Windows must hold a multiple of this many SNPs."""
        return self.patch * 2 ** (len(self.channels) - 1)

    @nn.compact
    def __call__(self, x: dict, t_B: jax.Array, y_B: jax.Array, train: bool = False) -> jax.Array:
        return self.head(x, y_B, *self.trunk(x, t_B, y_B, train))

    def trunk(self, x: dict, t_B: jax.Array, y_B: jax.Array, train: bool
              ) -> tuple[jax.Array, jax.Array]:
        """Each SNP's vector (float [B, L, snp_width]) and the U-Net's state unpacked to each
        SNP beside it (float [B, L, snp_width]): what the output head reads."""
        tokens_BxHxL, pos_BxL = x["tokens"], x["pos"]
        B, H, L = tokens_BxHxL.shape
        P, V = self.patch, self.vocab_size
        if L % self.length_multiple():
            raise ValueError(f"{type(self).__name__}: the window ({L} SNPs) must be "
                             f"a multiple of {self.length_multiple()} (patch x 2^(levels - 1))")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        res_kw = dict(num_groups=self.num_groups, dropout=self.dropout, ops=self.ops, **kw)

        emb_dim = 4 * self.channels[0]
        emb = TimestepEmbedding(emb_dim, self.channels[0], name="time_embed", **kw)(t_B)
        emb = emb + ClassEmbedding(self.num_classes, emb_dim, name="label_emb", **kw)(y_B)

        one_hot = jax.nn.one_hot(tokens_BxHxL, V + 1, dtype=self.dtype)  # [B, H, L, V + 1]
        af_BxL = jnp.asarray(x["af"], jnp.float32)
        af = jnp.stack([af_BxL, jnp.log(af_BxL + 1e-4), jnp.log(1.0 - af_BxL + 1e-4)], axis=-1)
        if self.population_input:
            q_BxL = population_frequency(x, y_B, self.num_classes)
            af = jnp.concatenate([af, jnp.stack([q_BxL, jnp.log(q_BxL), jnp.log1p(-q_BxL)],
                                                axis=-1)], axis=-1)
        snp = jnp.concatenate([one_hot.transpose(0, 2, 1, 3).reshape(B, L, H * (V + 1)),
                               af.astype(self.dtype),
                               distance_features(pos_BxL, self.distance_dim).astype(self.dtype)],
                              axis=-1)
        snp = nn.silu(nn.Dense(self.snp_width, name="snp_in", **kw)(snp))
        h = nn.Dense(self.channels[0], name="patch_in", **kw)(snp.reshape(B, L // P, -1))

        skips = [h]
        for level, width in enumerate(self.channels):
            for i in range(self.num_res_blocks):
                h = ResBlock(width, name=f"down_{level}_{i}", **res_kw)(h, emb, train)
                skips.append(h)
            if level < len(self.channels) - 1:
                h = ResBlock(width, down=True, name=f"down_{level}_resample", **res_kw)(
                    h, emb, train)
                skips.append(h)
        h = ResBlock(h.shape[-1], name="mid_0", **res_kw)(h, emb, train)
        h = AttentionBlock(self.num_heads, self.head_channels, self.num_groups,
                           self.attention_impl, name="mid_attn", ops=self.ops, **kw)(h)
        h = ResBlock(h.shape[-1], name="mid_1", **res_kw)(h, emb, train)
        for level, width in reversed(list(enumerate(self.channels))):
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = ResBlock(width, name=f"up_{level}_{i}", **res_kw)(h, emb, train)
            if level:
                h = ResBlock(width, up=True, name=f"up_{level}_resample", **res_kw)(h, emb, train)

        h = self.layers.GroupNorm(self.num_groups, name="out_norm", **kw)(h, activation=nn.silu)
        per_snp = nn.Dense(P * self.snp_width, name="unpatch", **kw)(h).reshape(B, L, -1)
        return snp, per_snp

    def head(self, x: dict, y_B: jax.Array, snp: jax.Array, per_snp: jax.Array) -> jax.Array:
        """Logits float32 [B, H, L, V] from the trunk's two per-SNP states (and the population
        prior where it is on)."""
        B, H, L = x["tokens"].shape
        V = self.vocab_size
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.silu(nn.Dense(self.snp_width, name="snp_out_hidden", **kw)(
            jnp.concatenate([per_snp, snp], axis=-1)))
        out_init = (nn.initializers.zeros if self.population_prior
                    else nn.initializers.lecun_normal())
        logits = nn.Dense(H * V, kernel_init=out_init, name="out", **kw)(h)  # [B, L, H V]
        logits = logits.reshape(B, L, H, V).transpose(0, 2, 1, 3).astype(jnp.float32)
        if self.population_prior:
            logits = logits + population_log_prior(x, y_B, self.num_classes, V)[:, None]
        return logits


def population_frequency(x: dict, y_B: jax.Array, num_classes: int) -> jax.Array:
    """The smoothed allele frequency of each SNP in the row's population, float32 [B, L]:
    x["class_af"], or x["pooled_af"] for the null label `num_classes`."""
    if "class_af" not in x or "pooled_af" not in x:
        raise ValueError("snp_unet: population_prior and population_input need the per-row SNP "
                         "context 'class_af' and 'pooled_af' (data.views.row_context)")
    null = (jnp.asarray(y_B) == num_classes)[:, None]
    return jnp.where(null, x["pooled_af"], x["class_af"]).astype(jnp.float32)


def population_log_prior(x: dict, y_B: jax.Array, num_classes: int, vocab_size: int
                         ) -> jax.Array:
    """log p(token) per SNP under the row's population, float32 [B, L, V]: Bernoulli(q) for
    haplotype alleles (V = 2), Hardy-Weinberg for dosages (V = 3), q = population_frequency."""
    q = population_frequency(x, y_B, num_classes)
    log_q, log_1mq = jnp.log(q), jnp.log1p(-q)
    if vocab_size == 2:
        return jnp.stack([log_1mq, log_q], axis=-1)
    return jnp.stack([2 * log_1mq, math.log(2.0) + log_q + log_1mq, 2 * log_q], axis=-1)
