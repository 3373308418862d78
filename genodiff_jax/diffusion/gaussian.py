"""The Gaussian process of the reference method (DESIGN 1.2): x_t = alpha_t x0 + sigma_t eps.

Discrete steps t in {0..T-1} of a registered noise schedule (with its hyper-parameters from the
config), a registered prediction target (eps, v, x0), the masked MSE on real feature slots, and the
samplers of `gaussian_samplers` and `multistep`. The network is conditioned on `time_input`: "t"
(t / T, the reference's input) or "logsnr" (the schedule's log-SNR mapped to [0, 1], as in vdm, so
a network sees the same input for the same noise level under any schedule).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.diffusion import multistep  # noqa: F401  (registers the multistep solvers)
from genodiff_jax.diffusion.forward import q_sample
from genodiff_jax.diffusion.gaussian_samplers import SAMPLERS, check_grid, time_grid
from genodiff_jax.diffusion.losses import masked_mae, masked_mse
from genodiff_jax.diffusion.predictions import DEFAULT_PREDICTION, Prediction, get_prediction
from genodiff_jax.diffusion.process import Net, check_sampler_options, register_process
from genodiff_jax.diffusion.schedules import DEFAULT_SCHEDULE, Schedule, get_schedule
from genodiff_jax.registry import Registry

# Sampler arguments the process always passes itself; every other keyword is a sampler option.
_COMMON = ("prediction", "mask")


def _t_over_T(schedule: Schedule, t: jax.Array) -> jax.Array:
    return jnp.asarray(t).astype(jnp.float32) / schedule.num_steps


def _normalised_logsnr(schedule: Schedule, t: jax.Array) -> jax.Array:
    """(logsnr_0 - logsnr_t) / (logsnr_0 - logsnr_{T-1}): 0 at the cleanest step, 1 at the
    noisiest, whatever the schedule."""
    logsnr = schedule.logsnr
    return (logsnr[0] - logsnr[t]) / (logsnr[0] - logsnr[-1])


TIME_INPUTS = {"t": _t_over_T, "logsnr": _normalised_logsnr}


@register_process("gaussian")
@dataclasses.dataclass(frozen=True)
class GaussianProcess:
    """Schedule x prediction target; the fields are the `config.diffusion` keys."""

    schedule: str = DEFAULT_SCHEDULE
    num_steps: int = 500  # T
    prediction: str = DEFAULT_PREDICTION
    schedule_kwargs: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    time_input: str = "t"

    selection_metric: ClassVar[str] = "val_recon"
    representation: ClassVar[str] = "features"

    def __post_init__(self) -> None:
        kwargs = self.schedule_kwargs
        items = kwargs.items() if isinstance(kwargs, Mapping) else kwargs
        object.__setattr__(self, "schedule_kwargs", tuple(sorted(dict(items).items())))
        if self.time_input not in TIME_INPUTS:
            raise ValueError(f"unknown time_input {self.time_input!r}; known: "
                             f"{', '.join(TIME_INPUTS)}")
        get_prediction(self.prediction)  # fail early on an unknown name
        _ = self.train_schedule

    @functools.cached_property
    def train_schedule(self) -> Schedule:
        return get_schedule(self.schedule, int(self.num_steps), **dict(self.schedule_kwargs))

    @property
    def target(self) -> Prediction:
        return get_prediction(self.prediction)

    @property
    def samplers(self) -> Registry:
        return SAMPLERS

    # -- training ----------------------------------------------------------------------------------

    def time(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """t ~ U{0..T-1}."""
        return jax.random.randint(key, shape, 0, self.train_schedule.num_steps)

    def noise(self, key: jax.Array, like: Any) -> jax.Array:
        """eps ~ N(0, 1), shaped like `like` (an array or a ShapeDtypeStruct)."""
        return jax.random.normal(key, like.shape, jnp.float32)

    def model_time(self, t: jax.Array) -> jax.Array:
        return TIME_INPUTS[self.time_input](self.train_schedule, t)

    def as_input(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        """Features as float32 with padded slots 0 (the sampler's x0 there), whatever is stored:
        where() also stops a NaN or inf there from reaching the network."""
        x = x if mask is None else jnp.where(mask, x, 0.0)
        return x.astype(jnp.float32)

    def _forward(self, net: Net, x0, t, eps):
        """(x_t, output, alpha_t, sigma_t, target) for one batch."""
        x_t = q_sample(self.train_schedule, x0, t, eps)
        out = net(x_t, t)
        alpha_t, sigma_t = self.train_schedule.alpha_sigma(t)
        return x_t, out, alpha_t, sigma_t, self.target.target(x0, eps, alpha_t, sigma_t)

    def loss(self, net: Net, x0: jax.Array, t: jax.Array, eps: jax.Array,
             mask: jax.Array | None) -> jax.Array:
        """Masked MSE between the output and the prediction target, over real slots."""
        _, out, _, _, target = self._forward(net, x0, t, eps)
        return masked_mse(out, target, mask)

    def eval_terms(self, net: Net, x0: jax.Array, t: jax.Array, eps: jax.Array,
                   mask: jax.Array | None, weights: jax.Array) -> dict[str, jax.Array]:
        """val_loss (the training loss) and val_recon (mean |x0_hat - x0|, DESIGN 1.2)."""
        x_t, out, alpha_t, sigma_t, target = self._forward(net, x0, t, eps)
        x0_hat, _ = self.target.to_x0_eps(out, x_t, alpha_t, sigma_t)
        return {"val_loss": masked_mse(out, target, mask, weights=weights),
                "val_recon": masked_mae(x0_hat, x0, mask, weights=weights)}

    # -- sampling ----------------------------------------------------------------------------------

    def check_steps(self, steps: int | None) -> None:
        T = self.train_schedule.num_steps
        if steps is not None and not 1 <= steps <= T:
            raise ValueError(f"sampling steps must be in [1, T = {T}], got {steps}")

    def sampling_grid(self, steps: int | None) -> tuple[Schedule, jax.Array]:
        """(schedule to sample on, ts): `steps` evenly spread steps (all when None), on the host."""
        self.check_steps(steps)
        schedule, ts = time_grid(self.train_schedule, steps)
        check_grid(ts, schedule.num_steps)
        return schedule, ts

    def prior(self, key: jax.Array, row: Any) -> jax.Array:
        """x_T ~ N(0, 1) for one example shaped like `row`."""
        return jax.random.normal(key, row.shape, jnp.float32)

    def sampler_options(self, sampler: str, options: Mapping[str, Any],
                        train_x: np.ndarray | None = None) -> dict[str, Any]:
        """`options` checked against the sampler's signature; clip_x0="data" becomes the training
        features' largest |value| (the z-score analogue of clipping images to [-1, 1])."""
        options = dict(options)
        check_sampler_options(self.samplers, sampler, options, _COMMON)
        clip = options.get("clip_x0")
        if isinstance(clip, str):
            if clip == "data":
                if train_x is None:
                    raise ValueError("clip_x0='data' needs the training features")
                options["clip_x0"] = float(np.abs(train_x).max())
            elif clip.lower() == "none":
                options["clip_x0"] = None
            else:
                raise ValueError(f"clip_x0 must be 'data', 'none' or a number, got {clip!r}")
        return options

    def sample(self, sampler: str, net: Net, grid: tuple[Schedule, jax.Array], keys_B: jax.Array,
               x_T: jax.Array, *, mask: jax.Array | None,
               options: Mapping[str, Any]) -> jax.Array:
        schedule, ts = grid
        return self.samplers[sampler](net, schedule, keys_B, x_T, ts, prediction=self.target,
                                      mask=mask, **options)
