"""Masked (absorbing-state) diffusion over genotype tokens (DESIGN 6; MD4, MDLM).

An example is a window of SNPs: {"tokens": int [H, L] (H = 2 haplotypes of a person, values in
{0, 1}; or H = 1 unphased dosage in {0, 1, 2}), and per-SNP context the network sees unchanged
("pos": base-pair positions, "af": training allele frequencies, float32 [L])}. Each
token is kept with probability alpha_t and replaced by MASK = vocab_size otherwise; alpha falls from
alpha_0 = 1 to alpha_1 = 0 over continuous t in [0, 1] by a registered masking schedule.

Loss: the continuous-time ELBO, E_t[(-alpha'_t / (1 - alpha_t)) sum over masked tokens of
-log p(x_l | x_t)], per token (nats). Validation reports it in bits per token (`val_bits`), the
checkpoint-selection metric. The network is conditioned on t itself.

Sampling: `MASKED_SAMPLERS` (`ancestral`: reveal each masked token on the step t -> s with
probability (alpha_s - alpha_t) / (1 - alpha_t), its value drawn from the model's distribution at
`temperature`). Tokens that are not MASK at the start never change: clamping known tokens is how
windows are stitched and how missing genotypes are imputed. Every sampler takes the option
`spacing` (`SPACINGS`: where the K steps fall in t; `cosine` reveals few tokens first, while
nothing is known, and more later). Values are drawn by Gumbel-max with the high-precision Gumbel
tail (`draw`), so an allele of probability 1e-6 is drawn as often as it should be.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from genodiff_jax.diffusion.process import Net, check_sampler_options, register_process
from genodiff_jax.registry import Registry

AlphaFn = Callable[..., jax.Array]

# alpha(t, **hyper) -> keep probability, for t in [0, 1]; alpha(0) = 1, alpha(1) = 0.
MASKING_SCHEDULES: Registry[AlphaFn] = Registry("masking schedule")
register_masking_schedule = MASKING_SCHEDULES.register


@register_masking_schedule("linear")
def linear_alpha(t: jax.Array) -> jax.Array:
    """alpha_t = 1 - t (ELBO weight 1 / t)."""
    return 1.0 - t


@register_masking_schedule("cosine")
def cosine_alpha(t: jax.Array) -> jax.Array:
    """alpha_t = 1 - cos(pi/2 (1 - t)): few tokens masked for small t, a slow start."""
    return 1.0 - jnp.cos(0.5 * math.pi * (1.0 - t))


@register_masking_schedule("polynomial")
def polynomial_alpha(t: jax.Array, exponent: float = 2.0) -> jax.Array:
    """alpha_t = 1 - t^exponent."""
    return 1.0 - jnp.power(t, exponent)


# -- samplers --------------------------------------------------------------------------------------

# spacing(u) -> t: where the sampler's K steps fall, u even on [0, 1]; spacing(0) = 0, (1) = 1.
SPACINGS: Registry[Callable[[jax.Array], jax.Array]] = Registry("sampling spacing")
register_spacing = SPACINGS.register


@register_spacing("uniform")
def uniform_spacing(u: jax.Array) -> jax.Array:
    """Steps even in t (for the linear schedule: as many tokens revealed at every step)."""
    return u


@register_spacing("cosine")
def cosine_spacing(u: jax.Array) -> jax.Array:
    """t = sin(pi/2 u): short steps near t = 1, so the first tokens (drawn knowing nothing of their
    neighbours) are few, and longer ones as context builds up (MaskGIT's cosine mask ratio)."""
    return jnp.sin(0.5 * math.pi * u)


def draw(key: jax.Array, logits: jax.Array) -> jax.Array:
    """One value per row of `logits` [..., V]: Gumbel-max with the high-precision Gumbel draw
    (`mode="high"`), whose tail resolves probabilities far below float32's 2^-23 uniform
    spacing."""
    gumbel = jax.random.gumbel(key, logits.shape, jnp.float32, mode="high")
    return jnp.argmax(logits + gumbel, axis=-1)


MASKED_SAMPLERS: Registry[Callable] = Registry("sampler")
register_masked_sampler = MASKED_SAMPLERS.register
_COMMON = ("alpha", "mask_id", "valid")


def _truncated(logits: jax.Array, min_p: float) -> jax.Array:
    """Logits with the values of probability below `min_p` removed (the likeliest always stays)."""
    if min_p <= 0:
        return logits
    probs = jax.nn.softmax(logits, axis=-1)
    keep = (probs >= min_p) | (probs == probs.max(axis=-1, keepdims=True))
    return jnp.where(keep, logits, -jnp.inf)


def _record_mean(x: dict, reveal: jax.Array, logits: jax.Array) -> dict:
    """Where the state tracks "mean" (float32, the caller's start), each token revealed now gets
    the expected value of the distribution it is drawn from: averaged over draws, the model's
    posterior mean with the last draw's Bernoulli noise gone (Rao-Blackwellised; an imputed
    dosage). Tokens that start known hold their value there, set by the caller."""
    if "mean" not in x:
        return x
    probs = jax.nn.softmax(logits, axis=-1)
    expected = probs @ jnp.arange(logits.shape[-1], dtype=jnp.float32)
    return {**x, "mean": jnp.where(reveal, expected, x["mean"])}


def _step_keys(keys_B: jax.Array, j: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two keys per row for step j: whether to reveal, and what."""
    step = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, j)))(keys_B)
    return step[:, 0], step[:, 1]


@register_masked_sampler("ancestral")
def ancestral(net: Net, grid: jax.Array, keys_B: jax.Array, x_T: dict, *, alpha: AlphaFn,
              mask_id: int, valid: jax.Array | None = None, temperature: float = 1.0,
              min_p: float = 0.0, spacing: str = "uniform") -> jax.Array:
    """Ancestral unmasking over the grid 1 = t_K > ... > t_0 = 0 (one model call a step); returns
    the tokens. Positions outside `valid` are left as they start. A revealed token is drawn from
    the model's distribution at `temperature`, with values below probability `min_p` dropped
    (0: the exact sampler); `spacing` names the step spacing (`SPACINGS`). A state with "mean"
    returns {"tokens", "mean"} (`_record_mean`)."""

    def step(x, xs):
        j, t, s = xs
        tokens = x["tokens"]
        B = tokens.shape[0]
        logits = net(x, jnp.full((B,), t, jnp.float32)).astype(jnp.float32)
        a_t, a_s = alpha(t), alpha(s)
        p_reveal = jnp.where(s <= 0, 1.0, (a_s - a_t) / jnp.maximum(1.0 - a_t, 1e-12))
        reveal_keys, draw_keys = _step_keys(keys_B, j)
        u = jax.vmap(lambda k: jax.random.uniform(k, tokens.shape[1:]))(reveal_keys)
        drawn_from = _truncated(logits / temperature, min_p)
        drawn = jax.vmap(draw)(draw_keys, drawn_from)
        reveal = (tokens == mask_id) & (u < p_reveal)
        if valid is not None:
            reveal = reveal & valid
        x = _record_mean(x, reveal, drawn_from)
        return {**x, "tokens": jnp.where(reveal, drawn, tokens).astype(tokens.dtype)}, None

    return _scan(step, grid, x_T, spacing)


def _scan(step, grid: jax.Array, x_T: dict, spacing: str) -> jax.Array | dict:
    """The tokens after the steps of `grid` (with "mean" where `x_T` tracks it)."""
    ts = SPACINGS[spacing](jnp.asarray(grid, jnp.float32))
    j = jnp.arange(ts.shape[0] - 1, dtype=jnp.int32)
    x_0, _ = jax.lax.scan(step, x_T, (j, ts[:-1], ts[1:]))
    if "mean" in x_0:
        return {"tokens": x_0["tokens"], "mean": x_0["mean"]}
    return x_0["tokens"]


@register_masked_sampler("confidence")
def confidence(net: Net, grid: jax.Array, keys_B: jax.Array, x_T: dict, *, alpha: AlphaFn,
               mask_id: int, valid: jax.Array | None = None, temperature: float = 1.0,
               noise: float = 1.0, spacing: str = "uniform") -> jax.Array:
    """Confidence-ordered unmasking (MaskGIT): each step draws every masked token and reveals as
    many as the ancestral sampler would in expectation, the ones whose drawn value the model is
    surest of (log-probability plus `noise` x Gumbel noise); uncertain, correlated tokens wait for
    more context instead of being drawn together. Not an exact sampler of the model (nor is its
    "mean", `_record_mean`, the model's posterior mean: which tokens are revealed depends on their
    drawn values)."""

    def step(x, xs):
        j, t, s = xs
        tokens = x["tokens"]
        B = tokens.shape[0]
        logits = net(x, jnp.full((B,), t, jnp.float32)).astype(jnp.float32)
        logp = jax.nn.log_softmax(logits / temperature, axis=-1)
        a_t, a_s = alpha(t), alpha(s)
        p_reveal = jnp.where(s <= 0, 1.0, (a_s - a_t) / jnp.maximum(1.0 - a_t, 1e-12))
        rank_keys, draw_keys = _step_keys(keys_B, j)
        drawn = jax.vmap(draw)(draw_keys, logp)
        picked = jnp.take_along_axis(logp, drawn[..., None], axis=-1)[..., 0]
        gumbel = jax.vmap(lambda k: jax.random.gumbel(k, tokens.shape[1:]))(rank_keys)
        masked = tokens == mask_id
        if valid is not None:
            masked = masked & valid
        score = jnp.where(masked, picked + noise * gumbel, -jnp.inf).reshape(B, -1)
        n_masked = masked.reshape(B, -1).sum(axis=1)
        k = jnp.where(s <= 0, n_masked, jnp.round(n_masked * p_reveal).astype(n_masked.dtype))
        order = jnp.argsort(-score, axis=1)
        rank = jnp.argsort(order, axis=1).reshape(tokens.shape)
        reveal = masked & (rank < k.reshape((B,) + (1,) * (tokens.ndim - 1)))
        x = _record_mean(x, reveal, logp)
        return {**x, "tokens": jnp.where(reveal, drawn, tokens).astype(tokens.dtype)}, None

    return _scan(step, grid, x_T, spacing)


# -- the process -----------------------------------------------------------------------------------

@register_process("masked")
@dataclasses.dataclass(frozen=True)
class MaskedProcess:
    """Absorbing-state diffusion; the fields are the `config.diffusion` keys.

    tokens: "haplotypes" (vocabulary {0, 1}, two rows a person) or "genotypes" ({0, 1, 2}).
    window: SNPs an example holds (a region longer than that is cut into overlapping windows,
    `overlap` SNPs shared by neighbours); num_steps: default sampling steps K; t_min: training
    times are drawn from [t_min, 1] (the ELBO weight is 1 / t for the linear schedule).
    """

    schedule: str = "linear"
    schedule_kwargs: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    tokens: str = "haplotypes"
    window: int = 8192
    overlap: int = 512
    num_steps: int = 64
    t_min: float = 1e-4

    selection_metric: ClassVar[str] = "val_bits"
    representation: ClassVar[str] = "tokens"

    def __post_init__(self) -> None:
        kwargs = self.schedule_kwargs
        items = kwargs.items() if isinstance(kwargs, Mapping) else kwargs
        object.__setattr__(self, "schedule_kwargs", tuple(sorted(dict(items).items())))
        MASKING_SCHEDULES[self.schedule]  # fail early on an unknown name
        if self.tokens not in ("haplotypes", "genotypes"):
            raise ValueError(f"tokens must be haplotypes or genotypes, got {self.tokens!r}")
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"need 0 <= overlap < window, got {self.overlap}, {self.window}")
        a0, a1 = float(self.alpha(jnp.float32(0.0))), float(self.alpha(jnp.float32(1.0)))
        if abs(a0 - 1) > 1e-6 or abs(a1) > 1e-6:
            raise ValueError(f"masking schedule {self.schedule!r} gives alpha_0 = {a0}, "
                             f"alpha_1 = {a1}; it needs 1 and 0")

    @property
    def vocab_size(self) -> int:
        return 2 if self.tokens == "haplotypes" else 3

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    def denoiser_kwargs(self) -> dict:
        """What a token denoiser built for this process needs: its vocabulary (MASK excluded)."""
        return {"vocab_size": self.vocab_size}

    @property
    def samplers(self) -> Registry:
        return MASKED_SAMPLERS

    def alpha(self, t: jax.Array) -> jax.Array:
        return MASKING_SCHEDULES[self.schedule](t, **dict(self.schedule_kwargs))

    def weight(self, t: jax.Array) -> jax.Array:
        """-alpha'_t / (1 - alpha_t), the ELBO weight of a masked token at time t [B]."""
        d_alpha = jax.vmap(jax.grad(lambda u: self.alpha(u)))(t)
        return -d_alpha / jnp.maximum(1.0 - self.alpha(t), 1e-12)

    # -- training ----------------------------------------------------------------------------------

    def time(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """t ~ U[t_min, 1]; over a batch stratified (antithetic: one uniform shifted by i / B),
        which lowers the ELBO estimate's variance (MD4)."""
        if len(shape) == 1 and shape[0] > 1:
            u = jnp.mod(jax.random.uniform(key, ()) + jnp.arange(shape[0]) / shape[0], 1.0)
        else:
            u = jax.random.uniform(key, shape)
        return self.t_min + (1.0 - self.t_min) * u

    def noise(self, key: jax.Array, like: Any) -> jax.Array:
        """One uniform per token: it is masked at time t when u < 1 - alpha_t."""
        return jax.random.uniform(key, like["tokens"].shape)

    def model_time(self, t: jax.Array) -> jax.Array:
        return jnp.asarray(t, jnp.float32)

    def as_input(self, x: dict, mask: jax.Array | None) -> dict:
        """Tokens as int32 (padded positions, `mask` False, hold token 0), positions float32."""
        tokens = x["tokens"].astype(jnp.int32)
        if mask is not None:
            tokens = jnp.where(mask, tokens, 0)
        return {**x, "tokens": tokens}

    def q_sample(self, x0: dict, t: jax.Array, u: jax.Array,
                 valid: jax.Array | None = None) -> tuple[dict, jax.Array]:
        """The forward (masking) process q(x_t | x_0): each token is replaced by MASK with
        probability 1 - alpha_t, where its uniform `u` falls below it (only where `valid`).
        Returns x_t and which tokens were masked."""
        tokens = x0["tokens"]
        drop = (1.0 - self.alpha(t)).reshape((-1,) + (1,) * (tokens.ndim - 1))
        masked = u < drop if valid is None else (u < drop) & valid
        return {**x0, "tokens": jnp.where(masked, self.mask_id, tokens)}, masked

    def _nats_per_token(self, net: Net, x0: dict, t: jax.Array, u: jax.Array,
                        mask: jax.Array | None) -> jax.Array:
        """The ELBO of each row in nats per (real) token [B]."""
        tokens = x0["tokens"]
        valid = jnp.ones(tokens.shape[1:], bool) if mask is None else jnp.broadcast_to(
            mask, tokens.shape[1:])
        x_t, masked = self.q_sample(x0, t, u, valid)
        logp = jax.nn.log_softmax(net(x_t, t).astype(jnp.float32), axis=-1)
        ll = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
        axes = tuple(range(1, tokens.ndim))
        ce_B = -jnp.sum(jnp.where(masked, ll, 0.0), axis=axes)
        return self.weight(t) * ce_B / jnp.sum(valid)

    def loss(self, net: Net, x0: dict, t: jax.Array, u: jax.Array,
             mask: jax.Array | None) -> jax.Array:
        return jnp.mean(self._nats_per_token(net, x0, t, u, mask))

    def eval_terms(self, net: Net, x0: dict, t: jax.Array, u: jax.Array,
                   mask: jax.Array | None, weights: jax.Array) -> dict[str, jax.Array]:
        nats = jnp.mean(self._nats_per_token(net, x0, t, u, mask) * weights)
        return {"val_loss": nats, "val_bits": nats / math.log(2.0)}

    # -- sampling ----------------------------------------------------------------------------------

    def check_steps(self, steps: int | None) -> None:
        if steps is not None and steps < 1:
            raise ValueError(f"sampling steps must be >= 1, got {steps}")

    def sampling_grid(self, steps: int | None) -> jax.Array:
        """1 = t_K > ... > t_0 = 0, K = `steps` (default `num_steps`), even in t."""
        self.check_steps(steps)
        return jnp.linspace(1.0, 0.0, (steps or self.num_steps) + 1, dtype=jnp.float32)

    def prior(self, key: jax.Array, row: Any) -> dict:
        """Everything masked (positions are the caller's: sample from a `start`)."""
        del key
        return {name: (jnp.full(spec.shape, self.mask_id, jnp.int32) if name == "tokens"
                       else jnp.zeros(spec.shape, spec.dtype)) for name, spec in row.items()}

    def sampler_options(self, sampler: str, options: Mapping[str, Any],
                        train_x: Any = None) -> dict[str, Any]:
        options = dict(options)
        check_sampler_options(self.samplers, sampler, options, _COMMON)
        if "temperature" in options and not float(options["temperature"]) > 0:
            raise ValueError(f"temperature must be > 0, got {options['temperature']}")
        if "spacing" in options:
            SPACINGS[options["spacing"]]  # an unknown name lists the registered ones
        return options

    def sample(self, sampler: str, net: Net, grid: jax.Array, keys_B: jax.Array, x_T: dict, *,
               mask: jax.Array | None, options: Mapping[str, Any]) -> jax.Array:
        return self.samplers[sampler](net, grid, keys_B, self.as_input(x_T, None),
                                      alpha=functools.partial(self.alpha), mask_id=self.mask_id,
                                      valid=mask, **options)


@register_process("masked_panel")
@dataclasses.dataclass(frozen=True)
class PanelMaskedProcess(MaskedProcess):
    """The masked process on examples that also hold a reference panel ("panel" int8 [R, L], never
    masked: `data.panels`), for the `snp_panel` denoiser. panel_size: R rows; panel_from: "class"
    (the person's class in the training split), "any" (everyone in it) or "neighbours" (the rows
    nearest the person's own; generating, anchors' of their class); panel_match: how nearness
    counts a matching token (`data.panels.MATCHES`; config files are checked against it by
    `train.schema`), for neighbours and imputation."""

    panel_size: int = 16
    panel_from: str = "class"
    panel_match: str = "agreement"

    representation: ClassVar[str] = "panel"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.panel_size < 1:
            raise ValueError(f"panel_size must be >= 1, got {self.panel_size}")
        if self.panel_from not in ("class", "any", "neighbours"):
            raise ValueError(f"panel_from must be class, any or neighbours, "
                             f"got {self.panel_from!r}")
