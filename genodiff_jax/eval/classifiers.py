"""Downstream classifiers on gene-PCA features (DESIGN 1.4) and their training.

Three linen modules, found by name in `CLASSIFIERS`, each called as
`model.apply({"params": p}, x_BxGxK, train=..., rngs={"dropout": key})` -> logits [B, C]:

- `mlp`: the flattened features through GELU layers with dropout;
- `cnn`: genes as the length axis, the K components as channels; conv + max-pool blocks, then an
  average pool down to `pooled_length` positions, flattened into a small dense head;
- `transformer`: each run of `genes_per_token` genes becomes one token through a position-specific
  linear map, a [cls] token is prepended, pre-LN encoder layers, the [cls] token (or the token mean)
  classifies.

Why the CNN keeps coarse positions instead of one global mean: a gene's PCA axes are its own (sign
and meaning differ from gene to gene), so a filter shared over genes followed by one mean over all
genes dilutes gene-specific differences between classes (on the tests' toy clusters at half their
separation, 300 people: 0.62 test accuracy with `pooled_length=1`, the plain global average pool,
against 0.95 with 16).

`fit_classifier` trains any of them with AdamW (warm-up + cosine learning rate) for a fixed number
of epochs and returns a `FittedClassifier` with `predict` and `accuracy`. Padded feature slots (mask
False) are zeroed before anything sees them. The jitted train step is cached per model and takes
one fixed-size batch, so the many fits of one evaluation (seeds, fractions, real or synthetic
training sets of any size) compile it once: on a 2-core CPU a compile costs 1-5 s, a fit of the
default MLP on 300 x 128 x 8 about 0.2 s.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genodiff_jax.models.transformer import EncoderLayer, PositionwiseLinear
from genodiff_jax.registry import Registry

CLASSIFIERS: Registry[type[nn.Module]] = Registry("classifier")


def register_classifier(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a classifier module under `name`."""
    return CLASSIFIERS.register(name)


def build_classifier(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Instantiate the classifier registered as `name` with its dataclass fields `kwargs`."""
    return CLASSIFIERS[name](num_classes=num_classes, **kwargs)


@register_classifier("mlp")
class MLPClassifier(nn.Module):
    """Flattened features -> (Dense-GELU-Dropout) x len(hidden) -> logits."""

    num_classes: int
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x_BxGxK: jax.Array, train: bool = False) -> jax.Array:
        h = x_BxGxK.reshape(x_BxGxK.shape[0], -1)
        for width in self.hidden:
            h = nn.gelu(nn.Dense(width)(h))
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(self.num_classes)(h)


@register_classifier("cnn")
class CNNClassifier(nn.Module):
    """1-D CNN over genes: (Conv-GELU-MaxPool2) per entry of `channels`, average pool to
    `pooled_length` positions, flatten, Dense-GELU-Dropout, logits."""

    num_classes: int
    channels: tuple[int, ...] = (16, 32, 64)
    kernel_size: int = 5
    pooled_length: int = 16
    hidden: int = 128
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x_BxGxK: jax.Array, train: bool = False) -> jax.Array:
        B, G, _ = x_BxGxK.shape
        if G % (2 ** len(self.channels)):
            raise ValueError(f"cnn: the gene axis ({G}) must halve {len(self.channels)} times")
        h = x_BxGxK
        for ch in self.channels:
            h = nn.gelu(nn.Conv(ch, (self.kernel_size,), padding="SAME")(h))
            h = nn.max_pool(h, (2,), strides=(2,))
        L, C = h.shape[1:]
        target = min(self.pooled_length, L)
        if L % target:
            raise ValueError(f"cnn: length {L} after pooling does not split into {target} parts")
        h = h.reshape(B, target, L // target, C).mean(axis=2).reshape(B, target * C)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.gelu(nn.Dense(self.hidden)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(self.num_classes)(h)


@register_classifier("transformer")
class TransformerClassifier(nn.Module):
    """Gene-token transformer encoder: tokens of `genes_per_token` genes x K -> width, [cls] +
    learned positions, `depth` pre-LN layers, [cls] token (`pool="cls"`) or mean -> logits."""

    num_classes: int
    genes_per_token: int = 16
    width: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.1
    pool: str = "cls"  # "cls" or "mean"
    attention_impl: str | None = None  # jax.nn.dot_product_attention: None, "xla", "cudnn"

    @nn.compact
    def __call__(self, x_BxGxK: jax.Array, train: bool = False) -> jax.Array:
        B, G, K = x_BxGxK.shape
        P = self.genes_per_token
        if G % P:
            raise ValueError(f"transformer: the gene axis ({G}) must be divisible by {P}")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"transformer: pool must be 'cls' or 'mean', got {self.pool!r}")
        N = G // P
        # Position-specific: each token's genes have their own PCA axes, so a shared map would
        # have to learn one projection that suits every gene.
        tok_BxNxC = PositionwiseLinear(self.width, name="tokenize")(x_BxGxK.reshape(B, N, P * K))
        cls_1x1xC = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.width))
        h = jnp.concatenate([jnp.broadcast_to(cls_1x1xC, (B, 1, self.width)), tok_BxNxC], axis=1)
        pos_LxC = self.param("pos_embed", nn.initializers.normal(0.02), (N + 1, self.width))
        h = nn.Dropout(self.dropout, deterministic=not train)(h + pos_LxC[None])
        for i in range(self.depth):
            h = EncoderLayer(self.num_heads, self.mlp_ratio, self.dropout, self.attention_impl,
                             name=f"layer_{i}")(h, train)
        h = nn.LayerNorm(name="out_norm")(h)
        pooled_BxC = h[:, 0] if self.pool == "cls" else h[:, 1:].mean(axis=1)
        return nn.Dense(self.num_classes, name="head")(pooled_BxC)


# --------------------------------------------------------------------------------------------
# Training


def masked_features(features: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """float32 [N, G, K] with padded slots (mask False) set to 0, whatever they held."""
    x = np.asarray(features, np.float32)
    if x.ndim != 3:
        raise ValueError(f"features must be [N, G, K], got shape {x.shape}")
    if mask is None:
        return x
    mask = np.asarray(mask, bool)
    if mask.shape != x.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} does not match features {x.shape[1:]}")
    return np.where(mask, x, np.float32(0))


def lr_schedule(lr: float, total_steps: int, warmup_steps: int) -> np.ndarray:
    """Linear warm-up then cosine decay to 0, float32 [total_steps] (computed on the host so the
    step takes the rate as an argument and one compiled step serves any run length)."""
    step = np.arange(total_steps, dtype=np.float64)
    warm = np.minimum(1.0, (step + 1) / max(warmup_steps, 1))
    progress = np.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
    return (lr * warm * 0.5 * (1 + np.cos(np.pi * progress))).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _init_fn(model: nn.Module) -> Callable:
    """The jitted `init` of `model` (eager init dispatches, and compiles, op by op: slower)."""
    return jax.jit(lambda key, x_1xGxK: model.init({"params": key}, x_1xGxK, train=False)["params"])


@functools.lru_cache(maxsize=32)
def _train_step(model: nn.Module) -> Callable:
    """The jitted AdamW step of `model`. Cached, and its inputs are one batch with the learning
    rate and decay as arguments, so every fit of a model at one batch shape (seeds, fractions,
    real or synthetic training sets of any size) shares one compile."""
    tx = optax.scale_by_adam()

    def step(params, opt_state, x_BxGxK, y_B, weight_B, lr, weight_decay, key):
        def loss_fn(p):
            logits = model.apply({"params": p}, x_BxGxK, train=True, rngs={"dropout": key})
            ce_B = optax.softmax_cross_entropy_with_integer_labels(logits, y_B)
            # weight 0 marks the rows that only pad a batch to its fixed size.
            return jnp.sum(weight_B * ce_B) / jnp.maximum(jnp.sum(weight_B), 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        # AdamW (decoupled decay), the rate and the decay traced rather than compiled in.
        params = jax.tree.map(lambda p, u: p - lr * (u + weight_decay * p), params, updates)
        return params, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


# Gathers a batch from the device-resident split: a small program compiled per split shape, so
# the large train step never depends on the split size.
_gather_rows = jax.jit(lambda data, idx: data[idx])


@functools.lru_cache(maxsize=32)
def _logits_fn(model: nn.Module) -> Callable:
    """The jitted inference forward pass of `model`."""
    return jax.jit(lambda params, x_BxGxK: model.apply({"params": params}, x_BxGxK, train=False))


@dataclasses.dataclass
class FittedClassifier:
    """A trained classifier: the module, its params, the feature mask and the loss per epoch."""

    name: str
    model: nn.Module
    params: Any
    mask: np.ndarray | None
    num_classes: int
    loss_history: list[float]
    eval_batch_size: int = 128

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits float32 [N, C], in fixed-size batches (the last one padded) so one compile
        serves any N."""
        x = masked_features(features, self.mask)
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, self.num_classes), np.float32)
        bs = self.eval_batch_size
        fn = _logits_fn(self.model)
        out = []
        for start in range(0, n, bs):
            chunk = x[start:start + bs]
            pad = bs - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            out.append(np.asarray(fn(self.params, chunk))[: bs - pad])
        return np.concatenate(out)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted class per row, int64 [N]."""
        return self.logits(features).argmax(axis=-1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Share of rows whose predicted class equals `labels`."""
        labels = np.asarray(labels)
        if len(labels) == 0:
            raise ValueError("accuracy of an empty set")
        return float(np.mean(self.predict(features) == labels))


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How `fit_classifier` trains: AdamW for `epochs` passes (more if that makes fewer than
    `min_steps` steps), the learning rate warmed up over `warmup_fraction` of the steps, then a
    cosine; `model_kwargs` are the module's size fields."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    min_steps: int = 100
    eval_batch_size: int = 128
    model_kwargs: Mapping[str, Any] | None = None


def fit_classifier(name: str, features: np.ndarray, labels: np.ndarray, num_classes: int, *,
                   mask: np.ndarray | None = None, seed: int = 0,
                   fit: FitSettings = FitSettings()) -> FittedClassifier:
    """Train classifier `name` on features [N, G, K] and int labels [N] in [0, num_classes), as
    `fit` says: softmax cross-entropy over a fresh seeded permutation each epoch, the last batch
    padded with zero-weight rows. Deterministic for a given seed and backend.
    """
    epochs, batch_size, lr = fit.epochs, fit.batch_size, fit.lr
    weight_decay, min_steps = fit.weight_decay, fit.min_steps
    x_NxGxK = masked_features(features, mask)
    y_N = np.asarray(labels)
    n = x_NxGxK.shape[0]
    if y_N.shape != (n,) or n == 0:
        raise ValueError(f"need one label per row (> 0 rows), got {y_N.shape} for {n} rows")
    if not np.issubdtype(y_N.dtype, np.integer) or y_N.min() < 0 or y_N.max() >= num_classes:
        raise ValueError(f"labels must be integers in [0, {num_classes})")
    model = build_classifier(name, num_classes, **dict(fit.model_kwargs or {}))

    key = jax.random.key(seed)
    init_key, dropout_key = jax.random.split(key)
    params = _init_fn(model)(init_key, jnp.asarray(x_NxGxK[:1]))
    opt_state = optax.scale_by_adam().init(params)

    # The whole split stays on the device; each step gathers its batch by index. The batch size
    # is fixed (a split smaller than a batch is padded with zero-weight rows) to keep one compile.
    data_NxGxK = jnp.asarray(x_NxGxK)
    labels_N = jnp.asarray(y_N, jnp.int32)
    bs = batch_size
    steps_per_epoch = math.ceil(n / bs)
    # A small split still gets `min_steps` updates: with a fixed epoch count a 5 % subset would
    # otherwise be under-trained compared with the full split.
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    total = epochs * steps_per_epoch
    lrs = lr_schedule(lr, total, int(fit.warmup_fraction * total))
    step_fn = _train_step(model)
    rng = np.random.default_rng(seed)
    weight = (np.arange(steps_per_epoch * bs) < n).astype(np.float32).reshape(steps_per_epoch, bs)
    history: list[float] = []
    for epoch in range(epochs):
        perm = rng.permutation(n)
        idx = np.resize(perm, steps_per_epoch * bs).astype(np.int32).reshape(steps_per_epoch, bs)
        losses = []
        for s in range(steps_per_epoch):
            t = epoch * steps_per_epoch + s
            params, opt_state, loss = step_fn(
                params, opt_state, _gather_rows(data_NxGxK, idx[s]), _gather_rows(labels_N, idx[s]),
                weight[s], lrs[t], np.float32(weight_decay), jax.random.fold_in(dropout_key, t))
            losses.append(loss)
        # Reading the losses once per epoch keeps the host from waiting on every step.
        history.append(float(np.mean(jax.device_get(losses))))
    return FittedClassifier(name, model, params, None if mask is None else np.asarray(mask, bool),
                            num_classes, history, fit.eval_batch_size)
