"""A third generator family from one file outside the package (issue 28): per-population
independent sites as a masked process over the whole region in one row.

Everything a family needs is registered here and nowhere else: the process ("sites", the masked
process under another representation), its dataset view (every person's haplotypes [2, S]), its
denoiser (a per-class table of logits that never looks at the tokens, so training fits each
class's allele frequencies and sampling draws independent sites) and the family entry
(generation and the genotypes the one cohort writer takes). `register()` adds them,
`unregister()` takes them out again (tests); `get_config` is a run's config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.data.views import TrainingView
from genodiff_jax.diffusion.masked import MaskedProcess
from genodiff_jax.diffusion.process import PROCESSES
from genodiff_jax.families import Genotypes, register_family, unregister_family
from genodiff_jax.models import MODELS
from genodiff_jax.sampling.cohort import generate, trained_denoiser

NAME = "sites"


@dataclasses.dataclass(frozen=True)
class SitesProcess(MaskedProcess):
    """The masked process on the "sites" view: a row is one person's whole region."""

    representation: ClassVar[str] = NAME


class SiteLogits(nn.Module):
    """Logits [B, H, S, V] from the class alone: a learned table per class (and the null label)."""

    num_classes: int
    vocab_size: int = 2
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    ops: str = "fast"

    REPRESENTATION: ClassVar[str] = NAME
    TEST_SIZES: ClassVar[dict] = {}

    @nn.compact
    def __call__(self, x: dict, t: jax.Array, y: jax.Array, train: bool = False) -> jax.Array:
        B, H, S = x["tokens"].shape
        table = nn.Embed(self.num_classes + 1, S * self.vocab_size, param_dtype=self.param_dtype)
        logits = table(y).reshape(B, 1, S, self.vocab_size)
        return jnp.broadcast_to(logits, (B, H, S, self.vocab_size)).astype(self.dtype)


def sites_view(data, process, model) -> TrainingView:
    """Both splits' haplotypes, one row a person."""
    del process, model
    train, test = data.tokens("train"), data.tokens("test")
    row = {"tokens": jax.ShapeDtypeStruct(train.shape[1:], np.int8)}
    return TrainingView({"tokens": train}, data.train.labels, {"tokens": test}, data.test.labels,
                        None, row)


class SitesFamily:
    view = staticmethod(sites_view)
    default_steps = (1, 2)
    takes_calling = False

    def sampling_plan(self, trained, data) -> None:
        return None

    def generate(self, trained, data, labels_N, settings, *, plan=None, progress=False):
        return generate(trained_denoiser(trained), process=trained.process, settings=settings,
                        labels_N=labels_N, shape=trained.row, progress=progress)

    def genotypes(self, samples, data, calling) -> Genotypes:
        return Genotypes(np.asarray(samples, np.int8))


def get_config(arg: str | None = None):
    """The masked family's CI-sized config with this process and denoiser (config keys only)."""
    import ml_collections

    from experiments import masked

    c = masked.get_config("smoke")
    c.diffusion.process = NAME
    c.model.name = "site_logits"
    c.model.kwargs = ml_collections.ConfigDict()
    c.diffusion.num_steps = 2
    c.train.num_steps = 60
    c.train.ema_decay = 0.5  # sample what 60 steps learnt
    c.optim.learning_rate = 0.05
    return c


def register() -> None:
    PROCESSES.register(NAME, SitesProcess)
    MODELS.register("site_logits", SiteLogits)
    register_family(NAME, SitesFamily())


def unregister() -> None:
    del PROCESSES[NAME], MODELS["site_logits"]
    unregister_family(NAME)
