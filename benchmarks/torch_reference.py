"""PyTorch twins of the four gene-PCA denoisers and of the train step, for `genodiff bench
--reference torch` (docs/benchmarks.md, "Against PyTorch, side by side").

A twin is written from DESIGN 1.3 and from genodiff_jax/models/: the same layers in the same order
at the same widths, so its parameter count equals ours at the same config (features [G, K],
classes); `genodiff bench` checks that before it times anything. `TWINS` maps a registered
denoiser name to its twin, built from the Flax module's size fields (`build_twin`: a size field
the twin does not know is an error; fields that only say how a layer is computed, the layer set
and the attention implementation, are ignored).

Where a twin computes differently, by construction:
- layout: the CNN U-Net runs as [B, C, L] (torch's Conv1d), its q/k/v and output projections as
  1x1 convolutions (ADM's form; the parameters of a Dense); attention is
  `F.scaled_dot_product_attention`;
- dropout: torch's (a Bernoulli mask per element) at the places and rates of ours (ours hashes the
  mask from one random word a call, models/ops/dropout.py);
- initialisation: torch's defaults, except where ours sets one (class multiplier bias 1, the
  ADM zero-initialised output convolutions); the forward section redraws every parameter from
  N(0, 0.02^2) as ours does (`randomise`). Speed does not depend on the values.

`TrainStep` is our train step (genodiff_jax/train/step.py) in torch: a batch gathered by random
indices from rows held in memory, t ~ U{0..T-1}, x_t = alpha_t x0 + sigma_t eps with the process's
own alpha, sigma and network time per step, labels replaced by the null class with probability
p_uncond, the masked MSE against the prediction target (`TARGETS`), the gradient norm, Adam (or
AdamW, clipping) with linear warm-up and cosine decay, and the EMA with its warm-up. `Forward` is
one denoiser call in inference mode.

An optional dependency: `pip install -r benchmarks/requirements-torch.txt` (torch 2.13.0; the CPU
build). This file imports no JAX: genodiff_jax/bench/reference.py hands it numpy arrays and plain
values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPS_GROUP_NORM = 1e-6  # flax's GroupNorm and ours (models/ops/norm.py); torch's default is 1e-5
EPS_LAYER_NORM = 1e-6  # flax's LayerNorm
TIME_SCALE = 1000.0  # models/embeddings.py: sinusoids of t / T * 1000, as of integer DDPM steps
NUM_EXTRA_TOKENS = 3  # the transformer's [cls], time and class tokens
# Model fields that say how a layer is computed, not what it is: no twin takes them.
HOW_FIELDS = frozenset({"ops", "attention_impl"})


def sinusoidal_embedding(t_B: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """[cos | sin] of t_B * TIME_SCALE, [B, dim] (models/embeddings.py)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args_BxH = (t_B.float() * TIME_SCALE)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args_BxH), torch.sin(args_BxH)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimestepEmbedding(nn.Module):
    """Sinusoids of t (freq_dim) -> Linear-SiLU-Linear to `features`."""

    def __init__(self, features: int, freq_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.lin1 = nn.Linear(freq_dim, features)
        self.lin2 = nn.Linear(features, features)

    def forward(self, t_B: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.silu(self.lin1(sinusoidal_embedding(t_B, self.freq_dim))))


# -- MLP U-Net (models/mlp_unet.py) ----------------------------------------------------------------

class MLPBlock(nn.Module):
    """Linear-SiLU (a) -> a * class + time -> Linear-SiLU (skip) -> GN -> dropout -> Linear-SiLU,
    + a."""

    def __init__(self, d_in: int, features: int, num_classes: int, num_groups: int,
                 dropout: float):
        super().__init__()
        self.inp = nn.Linear(d_in, features)
        self.time = nn.Linear(1, features)
        self.label = nn.Linear(num_classes + 1, features)
        nn.init.ones_(self.label.bias)  # as ours: an untrained label multiplies by ~1
        self.hidden = nn.Linear(features, features)
        self.norm = nn.GroupNorm(num_groups, features, eps=EPS_GROUP_NORM)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(features, features)

    def forward(self, h_BxF, t_Bx1, y1h_BxC) -> tuple[torch.Tensor, torch.Tensor]:
        a = F.silu(self.inp(h_BxF))
        a = a * self.label(y1h_BxC) + self.time(t_Bx1)
        skip = F.silu(self.hidden(a))
        h = self.drop(self.norm(skip))
        return F.silu(self.out(h)) + a, skip


class MLPUNet(nn.Module):
    """MLP U-Net: (x [B, G, K], t [B], y [B]) -> [B, G, K], plus the input."""

    def __init__(self, *, genes: int, components: int, num_classes: int,
                 widths=(1024, 512), bottleneck: int = 256, num_groups: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        D = genes * components
        block = dict(num_classes=num_classes, num_groups=num_groups, dropout=dropout)
        self.down = nn.ModuleList()
        d = D
        for width in widths:
            self.down.append(MLPBlock(d, width, **block))
            d = width
        self.mid_in = nn.Linear(d, bottleneck)
        self.mid_norm = nn.GroupNorm(num_groups, bottleneck, eps=EPS_GROUP_NORM)
        self.mid_out = nn.Linear(bottleneck, bottleneck)
        self.up = nn.ModuleList()
        d = bottleneck
        for width in reversed(widths):
            self.up.append(MLPBlock(d + width, width, **block))  # [h, the kept skip]
            d = width
        self.out_norm = nn.GroupNorm(num_groups, d, eps=EPS_GROUP_NORM)
        self.out = nn.Linear(d, D)

    def forward(self, x_BxGxK, t_B, y_B) -> torch.Tensor:
        B = x_BxGxK.shape[0]
        t_Bx1 = t_B.float().reshape(B, 1)
        y1h_BxC = F.one_hot(y_B.long(), self.num_classes + 1).float()
        h = x_BxGxK.reshape(B, -1)
        skips = []
        for block in self.down:
            h, skip = block(h, t_Bx1, y1h_BxC)
            skips.append(skip)
        h = F.silu(self.mid_norm(self.mid_in(h)))
        h = F.silu(self.mid_out(h))
        for block in self.up:
            h, _ = block(torch.cat([h, skips.pop()], dim=-1), t_Bx1, y1h_BxC)
        h = self.out(F.silu(self.out_norm(h)))
        return x_BxGxK + h.reshape(x_BxGxK.shape)


# -- CNN U-Net (models/cnn_unet.py), activations [B, C, L] -----------------------------------------

def _downsample(h_BxCxL: torch.Tensor) -> torch.Tensor:
    return F.avg_pool1d(h_BxCxL, 2)


def _upsample(h_BxCxL: torch.Tensor) -> torch.Tensor:
    return F.interpolate(h_BxCxL, scale_factor=2, mode="nearest")


def _zero(module: nn.Module) -> nn.Module:
    """ADM's zero_module, as ours initialises every residual branch's last layer."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """ADM residual block: GN-SiLU, (resample), conv; FiLM GN-SiLU, dropout, conv; + skip."""

    def __init__(self, c_in: int, features: int, emb_dim: int, num_groups: int, dropout: float,
                 resample: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.resample = resample
        self.in_norm = nn.GroupNorm(num_groups, c_in, eps=EPS_GROUP_NORM)
        self.in_conv = nn.Conv1d(c_in, features, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * features)
        self.out_norm = nn.GroupNorm(num_groups, features, eps=EPS_GROUP_NORM)
        self.drop = nn.Dropout(dropout)
        self.out_conv = _zero(nn.Conv1d(features, features, 3, padding=1))
        self.skip = nn.Conv1d(c_in, features, 1) if c_in != features else None

    def forward(self, x_BxCxL, emb_BxE) -> torch.Tensor:
        h = F.silu(self.in_norm(x_BxCxL))
        if self.resample is not None:  # as ADM: after the first activation, and on the skip path
            h, x_BxCxL = self.resample(h), self.resample(x_BxCxL)
        h = self.in_conv(h)
        scale, shift = self.emb(F.silu(emb_BxE))[..., None].chunk(2, dim=1)
        h = F.silu(self.out_norm(h) * (1 + scale) + shift)
        h = self.out_conv(self.drop(h))
        if self.skip is not None:
            x_BxCxL = self.skip(x_BxCxL)
        return x_BxCxL + h


class AttentionBlock(nn.Module):
    """Self-attention over the length: GN, q/k/v of num_heads x head_channels, zero-init output."""

    def __init__(self, channels: int, num_heads: int, head_channels: int, num_groups: int):
        super().__init__()
        self.num_heads, self.head_channels = num_heads, head_channels
        inner = num_heads * head_channels
        self.norm = nn.GroupNorm(num_groups, channels, eps=EPS_GROUP_NORM)
        self.qkv = nn.Conv1d(channels, 3 * inner, 1)
        self.proj = _zero(nn.Conv1d(inner, channels, 1))

    def forward(self, x_BxCxL) -> torch.Tensor:
        B, _, L = x_BxCxL.shape
        N, H = self.num_heads, self.head_channels
        qkv = self.qkv(self.norm(x_BxCxL)).reshape(B, 3, N, H, L).transpose(3, 4)
        a = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])  # [B, N, L, H]
        return x_BxCxL + self.proj(a.transpose(2, 3).reshape(B, N * H, L))


class Stage(nn.Module):
    """One step of the U-Net's path: a residual block, then attention and a second block where
    there are (the level's upsampling block; the middle's second block)."""

    def __init__(self, block: ResBlock, attn: AttentionBlock | None = None,
                 after: ResBlock | None = None):
        super().__init__()
        self.block, self.attn, self.after = block, attn, after

    def forward(self, h, emb) -> torch.Tensor:
        h = self.block(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        if self.after is not None:
            h = self.after(h, emb)
        return h


class CNNUNet(nn.Module):
    """1-D ADM U-Net over the gene axis: (x [B, G, K], t [B], y [B]) -> [B, G, K], plus the
    input."""

    def __init__(self, *, genes: int, components: int, num_classes: int,
                 base_channels: int = 64, channel_mult=(1, 1, 1, 1, 2, 2, 3, 4),
                 num_res_blocks: int = 3, attention_ds=(32, 64), num_heads: int = 4,
                 head_channels: int = 64, num_groups: int = 32, dropout: float = 0.1):
        super().__init__()
        factor = 2 ** (len(channel_mult) - 1)
        if genes % factor:
            raise ValueError(f"cnn_unet: the gene axis ({genes}) must be divisible by {factor}")
        emb_dim = 4 * base_channels
        res = dict(emb_dim=emb_dim, num_groups=num_groups, dropout=dropout)

        def attention(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, num_heads, head_channels, num_groups)

        self.time_embed = TimestepEmbedding(emb_dim, base_channels)
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim)
        ch = base_channels * channel_mult[0]
        self.in_conv = nn.Conv1d(components, ch, 3, padding=1)
        kept, ds = [ch], 1  # channels of each kept skip
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                block = ResBlock(ch, mult * base_channels, **res)
                ch = mult * base_channels
                self.down.append(Stage(block, attention(ch) if ds in attention_ds else None))
                kept.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(Stage(ResBlock(ch, ch, resample=_downsample, **res)))
                kept.append(ch)
                ds *= 2
        self.mid = Stage(ResBlock(ch, ch, **res), attention(ch), ResBlock(ch, ch, **res))
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                block = ResBlock(ch + kept.pop(), mult * base_channels, **res)
                ch = mult * base_channels
                attn = attention(ch) if ds in attention_ds else None
                upsample = None
                if level and i == num_res_blocks:
                    upsample = ResBlock(ch, ch, resample=_upsample, **res)
                    ds //= 2
                self.up.append(Stage(block, attn, upsample))
        self.out_norm = nn.GroupNorm(num_groups, ch, eps=EPS_GROUP_NORM)
        self.out_conv = _zero(nn.Conv1d(ch, components, 3, padding=1))

    def forward(self, x_BxGxK, t_B, y_B) -> torch.Tensor:
        emb = self.time_embed(t_B) + self.label_emb(y_B.long())
        h = self.in_conv(x_BxGxK.transpose(1, 2))
        hs = [h]
        for stage in self.down:
            h = stage(h, emb)
            hs.append(h)
        h = self.mid(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, hs.pop()], dim=1), emb)
        out = self.out_conv(F.silu(self.out_norm(h)))
        return x_BxGxK + out.transpose(1, 2)


# -- MLP + CNN (models/mlp_cnn.py) -----------------------------------------------------------------

class MLPCNN(nn.Module):
    """(1 - w(t)) MLP U-Net + w(t) CNN U-Net, w = sigmoid(Linear(1 -> h)-SiLU-Linear(h -> 1))."""

    def __init__(self, *, genes: int, components: int, num_classes: int,
                 mlp_widths=(1024, 512), mlp_bottleneck: int = 256, mlp_dropout: float = 0.0,
                 base_channels: int = 64, channel_mult=(1, 1, 1, 1, 2, 2, 3, 4),
                 num_res_blocks: int = 3, attention_ds=(32, 64), num_heads: int = 4,
                 head_channels: int = 64, cnn_dropout: float = 0.1, num_groups: int = 32,
                 mix_hidden: int = 128):
        super().__init__()
        shape = dict(genes=genes, components=components, num_classes=num_classes)
        self.mix_hidden = nn.Linear(1, mix_hidden)
        self.mix_out = nn.Linear(mix_hidden, 1)
        self.mlp = MLPUNet(**shape, widths=mlp_widths, bottleneck=mlp_bottleneck,
                           num_groups=num_groups, dropout=mlp_dropout)
        self.cnn = CNNUNet(**shape, base_channels=base_channels, channel_mult=channel_mult,
                           num_res_blocks=num_res_blocks, attention_ds=attention_ds,
                           num_heads=num_heads, head_channels=head_channels,
                           num_groups=num_groups, dropout=cnn_dropout)

    def forward(self, x_BxGxK, t_B, y_B) -> torch.Tensor:
        w_Bx1x1 = torch.sigmoid(self.mix_out(F.silu(self.mix_hidden(t_B.float()[:, None]))))
        w_Bx1x1 = w_Bx1x1[:, :, None]
        return (1 - w_Bx1x1) * self.mlp(x_BxGxK, t_B, y_B) + w_Bx1x1 * self.cnn(x_BxGxK, t_B, y_B)


# -- Transformer (models/transformer.py) -----------------------------------------------------------

class PositionwiseLinear(nn.Module):
    """A separate affine map per token position: [B, N, D] -> [B, N, F]."""

    def __init__(self, positions: int, d_in: int, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(positions, d_in, features) / math.sqrt(d_in))
        self.bias = nn.Parameter(torch.zeros(positions, features))

    def forward(self, x_BxNxD) -> torch.Tensor:
        return torch.einsum("bnd,ndf->bnf", x_BxNxD, self.weight) + self.bias


class EncoderLayer(nn.Module):
    """Pre-LN encoder layer: LN, q/k/v, attention, out + dropout; LN, GELU FFN with dropout."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.attn_norm = nn.LayerNorm(width, eps=EPS_LAYER_NORM)
        self.qkv = nn.Linear(width, 3 * width)
        self.attn_out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width, eps=EPS_LAYER_NORM)
        self.mlp_in = nn.Linear(width, mlp_ratio * width)
        self.mlp_out = nn.Linear(mlp_ratio * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h_BxLxC) -> torch.Tensor:
        B, L, C = h_BxLxC.shape
        N = self.num_heads
        qkv = self.qkv(self.attn_norm(h_BxLxC)).reshape(B, L, 3, N, C // N).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # [B, N, L, H]
        h_BxLxC = h_BxLxC + self.drop(self.attn_out(a.transpose(1, 2).reshape(B, L, C)))
        m = F.gelu(self.mlp_in(self.mlp_norm(h_BxLxC)))
        return h_BxLxC + self.drop(self.mlp_out(self.drop(m)))


class Transformer(nn.Module):
    """Gene-token transformer: (x [B, G, K], t [B], y [B]) -> [B, G, K], plus the input."""

    def __init__(self, *, genes: int, components: int, num_classes: int,
                 genes_per_token: int = 16, width: int = 384, depth: int = 12,
                 num_heads: int = 6, mlp_ratio: int = 4, dropout: float = 0.0,
                 time_freq_dim: int = 128):
        super().__init__()
        if genes % genes_per_token:
            raise ValueError(f"transformer: the gene axis ({genes}) must be divisible by "
                             f"{genes_per_token}")
        N, D = genes // genes_per_token, genes_per_token * components
        self.tokenize = PositionwiseLinear(N, D, width)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, width))
        self.time_embed = TimestepEmbedding(width, time_freq_dim)
        self.label_emb = nn.Embedding(num_classes + 1, width)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(N + NUM_EXTRA_TOKENS, width))
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(width, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width, eps=EPS_LAYER_NORM)
        self.detokenize = PositionwiseLinear(N, width, D)

    def forward(self, x_BxGxK, t_B, y_B) -> torch.Tensor:
        B = x_BxGxK.shape[0]
        N = self.tokenize.weight.shape[0]
        tok = self.tokenize(x_BxGxK.reshape(B, N, -1))
        h = torch.cat([self.cls_token.expand(B, -1, -1), self.time_embed(t_B)[:, None],
                       self.label_emb(y_B.long())[:, None], tok], dim=1)
        h = self.drop(h + self.pos_embed[None])
        for layer in self.layers:
            h = layer(h)
        out = self.detokenize(self.out_norm(h[:, NUM_EXTRA_TOKENS:]))
        return x_BxGxK + out.reshape(x_BxGxK.shape)


# The twin of each registered gene-PCA denoiser; its keyword arguments are the Flax module's size
# fields (models/registry.py names them).
TWINS: dict[str, type[nn.Module]] = {
    "mlp_unet": MLPUNet,
    "cnn_unet": CNNUNet,
    "mlp_cnn": MLPCNN,
    "transformer": Transformer,
}


def build_twin(name: str, fields: Mapping, *, genes: int, components: int,
               num_classes: int) -> nn.Module:
    """The twin of denoiser `name` with the Flax module's size `fields` at features
    [genes, components]; a size field it does not take is a TypeError."""
    sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
             if k not in HOW_FIELDS}
    return TWINS[name](genes=genes, components=components, num_classes=num_classes, **sizes)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter drawn from N(0, 0.02^2), as the benchmark draws ours."""
    generator = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.normal_(0.0, 0.02, generator=generator)
    return module


# -- the train step --------------------------------------------------------------------------------

# What the network is trained to output, by prediction name (diffusion/predictions.py).
TARGETS: dict[str, Callable[..., torch.Tensor]] = {
    "eps": lambda x0, eps, alpha, sigma: eps,
    "v": lambda x0, eps, alpha, sigma: alpha * eps - sigma * x0,
    "x0": lambda x0, eps, alpha, sigma: x0,
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What the train step does besides the network, from the run's config and process."""

    alpha_T: np.ndarray  # [T] alpha_t of each integer step
    sigma_T: np.ndarray  # [T]
    model_time_T: np.ndarray  # [T] what the network is given for step t (t / T, or log-SNR)
    prediction: str
    p_uncond: float
    ema_decay: float
    learning_rate: float
    b1: float
    b2: float
    eps: float
    weight_decay: float
    clip_grad_norm: float
    warmup_steps: int
    total_steps: int
    end_lr_factor: float


def learning_rate(r: Recipe, update: int) -> float:
    """optax.warmup_cosine_decay_schedule from 0 as genodiff_jax/train/state.py builds it."""
    warmup = max(0, min(r.warmup_steps, r.total_steps - 1))
    total = max(r.total_steps, warmup + 1)
    if update < warmup:
        return r.learning_rate * update / warmup
    progress = min(1.0, (update - warmup) / (total - warmup))
    end = r.learning_rate * r.end_lr_factor
    return end + (r.learning_rate - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params, r: Recipe) -> torch.optim.Optimizer:
    """Adam (AdamW with weight decay) at the recipe's hyper-parameters; torch's fused kernel where
    this build has one for the device, its default implementation otherwise."""
    cls = torch.optim.AdamW if r.weight_decay > 0 else torch.optim.Adam
    kw = dict(lr=r.learning_rate, betas=(r.b1, r.b2), eps=r.eps, weight_decay=r.weight_decay)
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, ValueError):
        return cls(params, **kw)


def _total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    if hasattr(nn.utils, "get_total_norm"):
        return nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class TrainStep:
    """One call is one train step of `model` on rows held in memory (see the module docstring)."""

    def __init__(self, model: nn.Module, recipe: Recipe, *, data_NxGxK: np.ndarray,
                 labels_N: np.ndarray, mask_GxK: np.ndarray | None, batch: int,
                 num_classes: int, seed: int):
        torch.manual_seed(seed)  # dropout draws from torch's global generator
        self.model = model.train()
        self.recipe, self.batch, self.num_classes = recipe, batch, num_classes
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.data = torch.tensor(np.asarray(data_NxGxK, np.float32))
        self.labels = torch.tensor(np.asarray(labels_N, np.int64))
        mask = np.ones(self.data.shape[1:], bool) if mask_GxK is None else mask_GxK
        self.mask = torch.tensor(np.asarray(mask, bool))
        self.alpha = torch.tensor(np.asarray(recipe.alpha_T, np.float32))
        self.sigma = torch.tensor(np.asarray(recipe.sigma_T, np.float32))
        self.model_time = torch.tensor(np.asarray(recipe.model_time_T, np.float32))
        self.target = TARGETS[recipe.prediction]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.ema = [p.detach().clone() for p in self.params]
        self.optimizer = make_optimizer(self.params, recipe)
        self.updates = 0
        self.last_loss = float("nan")
        self.last_grad_norm = float("nan")

    def loss(self, x0, y_B) -> torch.Tensor:
        """The masked MSE of the network output against the target at random t and noise."""
        B, g = x0.shape[0], self.generator
        t_B = torch.randint(0, self.alpha.shape[0], (B,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        shape = (B,) + (1,) * (x0.ndim - 1)
        alpha, sigma = self.alpha[t_B].reshape(shape), self.sigma[t_B].reshape(shape)
        x_t = alpha * x0 + sigma * eps
        drop_B = torch.rand(B, generator=g) < self.recipe.p_uncond
        y_B = torch.where(drop_B, torch.full_like(y_B, self.num_classes), y_B)
        out = self.model(x_t, self.model_time[t_B], y_B)
        diff = torch.where(self.mask, out - self.target(x0, eps, alpha, sigma), 0.0)
        n_real = self.mask.sum().clamp(min=1)
        return (diff.square().flatten(1).sum(1) / n_real).mean()

    def __call__(self) -> torch.Tensor:
        r = self.recipe
        idx_B = torch.randint(0, self.data.shape[0], (self.batch,), generator=self.generator)
        x0 = torch.where(self.mask, self.data[idx_B], 0.0)
        loss = self.loss(x0, self.labels[idx_B])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.params]
        if r.clip_grad_norm > 0:
            grad_norm = nn.utils.clip_grad_norm_(self.params, r.clip_grad_norm)
        else:
            grad_norm = _total_norm(grads)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(r, self.updates)
        self.optimizer.step()
        decay = min(r.ema_decay, (1.0 + self.updates) / (10.0 + self.updates))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, self.params, 1.0 - decay)
        self.updates += 1
        self.last_loss, self.last_grad_norm = loss.item(), grad_norm.item()
        return loss


class Forward:
    """One denoiser call in inference mode on fixed inputs: one unguided sampling step."""

    def __init__(self, model: nn.Module, x_BxGxK: np.ndarray, t_B: np.ndarray, y_B: np.ndarray):
        self.model = model.eval()
        self.x = torch.tensor(np.asarray(x_BxGxK, np.float32))
        self.t = torch.tensor(np.asarray(t_B, np.float32))
        self.y = torch.tensor(np.asarray(y_B, np.int64))

    def __call__(self) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(self.x, self.t, self.y)
