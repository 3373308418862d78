"""What a diffusion process trains on, taken from a prepared dataset: found by the process's
`representation` in `VIEWS`.

- `features`: the gene-PCA features [n, G, K] and their mask (the Gaussian family).
- `panel`: the token view with each row's reference panel ("panel" int8 [rows, R, L],
  `data.panels`), for the `snp_panel` denoiser.
- `tokens`: windows of genotype tokens, {"tokens": int8 [rows, H, L], "pos", "af", "class_af",
  "pooled_af": float32 [rows, L]} (H = 2 haplotypes or 1 dosage row; pos = base pairs from the
  region's first SNP, af = the SNP's training allele frequency; class_af / pooled_af = the
  smoothed training frequency in the row's class / in everyone, never 0 or 1, what the
  population prior of `snp_unet` reads). A region of
  S <= window SNPs is one window, padded to the model's length multiple (the mask marks the real
  SNPs); a longer one is cut into windows of `window` SNPs overlapping by `overlap`, the last one
  ending at the last SNP, each (person, window) a training row with the person's label.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from genodiff_jax.data.panels import (
    best_matching,
    draw_panels,
    own_rows,
    panel_rows,
    windowed_panels,
)
from genodiff_jax.errors import InputError
from genodiff_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class TrainingView:
    """Both splits as the train step takes them, the real-slot mask and one example's spec."""

    train_x: Any
    train_labels: np.ndarray
    test_x: Any
    test_labels: np.ndarray
    mask: np.ndarray | None
    row: Any  # ShapeDtypeStruct(s) of one example
    # What simple generators score on the test split, in the selection metric's units, e.g.
    # {"independent_sites_bits": ...}: the figure a trained run must beat (written to run.json).
    baselines: dict = dataclasses.field(default_factory=dict)


VIEWS: Registry = Registry("dataset view")


@VIEWS.register("features")
def feature_view(data, process, model) -> TrainingView:
    del process, model
    row = jax.ShapeDtypeStruct(data.mask.shape, np.float32)
    return TrainingView(data.train.features, data.train.labels, data.test.features,
                        data.test.labels, data.mask, row)


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a region start, how long they are and how many SNPs are real."""

    starts: np.ndarray  # first SNP of each window
    length: int  # SNPs a window holds (the model's input length)
    num_snps: int  # S, the region
    # Generating, each window starts from what the window before drew where they overlap
    # (inpainting, `sampling.tokens`); False: from the known tokens alone.
    carry: bool = True

    @property
    def real(self) -> int:
        """Real SNPs per window (< length only for a padded single window)."""
        return min(self.length, self.num_snps)

    def mask(self) -> np.ndarray | None:
        if self.real == self.length:
            return None
        return np.arange(self.length) < self.real


def plan_windows(num_snps: int, window: int, overlap: int, multiple: int) -> WindowPlan:
    """Windows of `window` SNPs (a multiple of `multiple`) overlapping by at least `overlap`."""
    if window % multiple:
        raise InputError(None, f"diffusion.window ({window}) must be a multiple of {multiple}, "
                               "what the model's down-sampling needs")
    if num_snps <= window:
        return WindowPlan(np.zeros(1, np.int64), -(-num_snps // multiple) * multiple, num_snps)
    stride = window - overlap
    starts = list(range(0, num_snps - window, stride)) + [num_snps - window]
    return WindowPlan(np.asarray(starts, np.int64), window, num_snps)


CHROMOSOME_GAP_BP = 10_000_000  # between chromosomes laid end to end: far beyond any LD


def token_positions(data) -> np.ndarray:
    """Base pairs from the region's first SNP, float32 [S]. Chromosomes are laid end to end in the
    order of the variant table with CHROMOSOME_GAP_BP between them, so a window that spans two
    sees them as unlinked."""
    pos = np.asarray(data.variants.pos, np.int64)
    chrom = np.asarray(data.variants.chrom).astype(str)
    out = np.empty(len(pos), np.int64)
    offset = 0
    for name in dict.fromkeys(chrom):
        on = chrom == name
        out[on] = pos[on] - pos[on].min() + offset
        offset = out[on].max() + CHROMOSOME_GAP_BP
    return out.astype(np.float32)


def smoothed_frequencies(tokens: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """ALT allele frequencies float32 [num_classes + 1, S]: row c over the people of class c, the
    last row over everyone (the null label's). Krichevsky-Trofimov estimates, (k + 1/2) / (n + 1)
    for k ALT alleles among n, so no frequency is 0 or 1 and a rare allele keeps a finite log
    probability; a class without people gets 1/2."""
    tokens = np.asarray(tokens)
    labels = np.asarray(labels)
    per_person = tokens.reshape(len(tokens), -1, tokens.shape[-1]).sum(axis=1, dtype=np.int64)
    alleles = 2  # two haplotype rows, or one dosage in {0, 1, 2}
    counts = np.zeros((num_classes + 1, tokens.shape[-1]), np.int64)
    np.add.at(counts, labels, per_person)
    counts[num_classes] = per_person.sum(axis=0)
    people = np.bincount(labels, minlength=num_classes + 1)
    people[num_classes] = len(labels)
    return ((counts + 0.5) / (alleles * people[:, None] + 1.0)).astype(np.float32)


def snp_context(data) -> dict[str, np.ndarray]:
    """What the network sees of each SNP besides its tokens: "pos" (`token_positions`) and "af"
    (its allele frequency in the training split), float32 [S], and "class_af", the smoothed
    frequencies float32 [C + 1, S] of `smoothed_frequencies` (each row takes its class's)."""
    train = np.asarray(data.tokens("train"))
    scale = 1.0 if train.ndim == 3 else 2.0  # haplotype alleles, or dosages
    af = train.mean(axis=tuple(range(train.ndim - 1)), dtype=np.float64) / scale
    return {"pos": token_positions(data), "af": af.astype(np.float32),
            "class_af": smoothed_frequencies(train, data.train.labels, data.num_classes)}


def window_context(context: dict[str, np.ndarray], plan: WindowPlan,
                   start: int) -> dict[str, np.ndarray]:
    """One window's slice of the SNP context [..., L]: padding continues the positions past the
    region's end (at the window's median spacing), has frequency 0 and smoothed frequency 1/2."""
    real, L = plan.real, plan.length
    pos = context["pos"][start:start + real]
    step = float(np.median(np.diff(pos))) if real > 1 else 1.0
    pad = L - real
    out = {"pos": np.concatenate([pos, pos[-1] + step * np.arange(1, pad + 1)]).astype(
        np.float32)}
    for name, fill in (("af", 0.0), ("class_af", 0.5)):
        if name in context:
            values = context[name][..., start:start + real]
            filler = np.full(values.shape[:-1] + (pad,), fill)
            out[name] = np.concatenate([values, filler], axis=-1).astype(np.float32)
    return out


def row_context(window: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, np.ndarray]:
    """A window's context for rows of class `labels` [n]: float32 [n, L] each; "class_af" is the
    row's class's smoothed frequency and "pooled_af" everyone's (the table's last row)."""
    n = len(labels)
    rows = {name: np.broadcast_to(window[name], (n, window[name].shape[-1]))
            for name in ("pos", "af")}
    if "class_af" in window:
        table = window["class_af"]
        rows["class_af"] = table[np.asarray(labels)]
        rows["pooled_af"] = np.broadcast_to(table[-1], rows["class_af"].shape)
    return rows


def cut_windows(tokens: np.ndarray, context: dict[str, np.ndarray], plan: WindowPlan,
                labels: np.ndarray) -> dict:
    """Every (person, window) as a row, window-major within a person: tokens int8 [n W, H, L]
    (padding holds token 0) and the windows' context for the person's class (`row_context`)
    float32 [n W, L]."""
    tokens = np.asarray(tokens, np.int8)
    if tokens.ndim == 2:
        tokens = tokens[:, None]
    n, H, _ = tokens.shape
    W, L, real = len(plan.starts), plan.length, plan.real
    out = np.zeros((n, W, H, L), np.int8)
    for w, start in enumerate(plan.starts):
        out[:, w, :, :real] = tokens[:, :, start:start + real]
    rows = {"tokens": out.reshape(n * W, H, L)}
    per_window = [row_context(window_context(context, plan, int(start)), labels)
                  for start in plan.starts]
    for name in per_window[0]:
        stacked = np.stack([c[name] for c in per_window], axis=1)  # [n, W, L]
        rows[name] = np.ascontiguousarray(stacked.reshape(n * W, L))
    return rows


def token_plan(data, process, model) -> WindowPlan:
    multiple = model.length_multiple() if hasattr(model, "length_multiple") else 1
    return plan_windows(len(data.variants.pos), int(process.window), int(process.overlap),
                        multiple)


@VIEWS.register("tokens")
def token_view(data, process, model) -> TrainingView:
    if data.token_kind is None:
        raise InputError(data.path, "this dataset has no genotype tokens; run `genodiff prepare` "
                                    "again")
    if data.token_kind != process.tokens:
        raise InputError(data.path, f"the dataset holds {data.token_kind} tokens but the config "
                                    f"asks for diffusion.tokens = {process.tokens!r}")
    plan = token_plan(data, process, model)
    context = snp_context(data)
    windows = len(plan.starts)
    train = cut_windows(data.tokens("train"), context, plan, data.train.labels)
    test = cut_windows(data.tokens("test"), context, plan, data.test.labels)
    row = {name: jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for name, a in train.items()}
    baseline = independent_sites_bits(data.tokens("test"), data.test.labels, context["class_af"])
    return TrainingView(train, np.repeat(data.train.labels, windows), test,
                        np.repeat(data.test.labels, windows), plan.mask(), row,
                        {"independent_sites_bits": baseline})


@VIEWS.register("panel")
def panel_view(data, process, model) -> TrainingView:
    """The token view (`data.views.token_view`) with each row's panel, "panel" int8 [R, L]: R =
    `process.panel_size` rows of the training split drawn by `process.panel_from` (or, for
    "neighbours", the rows nearest the person's), leave-one-out for training people, fixed for
    the run (seeded by the dataset)."""
    view = token_view(data, process, model)
    plan = token_plan(data, process, model)
    train_tokens = data.tokens("train")
    rows = panel_rows(train_tokens)
    per_person = rows.shape[0] // len(data.train.labels)
    size = int(process.panel_size)
    if process.panel_from == "neighbours":
        def people(tokens: np.ndarray) -> np.ndarray:  # [n, rows a person, S]
            return np.asarray(tokens).reshape(len(tokens), per_person, -1)

        match = process.panel_match
        train_panels = best_matching(rows, people(train_tokens), size, leave_out=own_rows(
            np.arange(len(data.train.labels)), per_person), match=match)
        test_panels = best_matching(rows, people(data.tokens("test")), size, match=match)
    else:
        rng = np.random.default_rng([len(rows), rows.shape[-1], size])
        draw = dict(rows_per_person=per_person, size=size, rng=rng,
                    panel_from=process.panel_from)
        train_panels = draw_panels(data.train.labels, data.train.labels,
                                   pool_person=np.arange(len(data.train.labels)), **draw)
        test_panels = draw_panels(data.test.labels, data.train.labels, **draw)
    train_x = {**view.train_x, "panel": windowed_panels(rows, train_panels, plan)}
    test_x = {**view.test_x, "panel": windowed_panels(rows, test_panels, plan)}
    row = {**view.row, "panel": jax.ShapeDtypeStruct(train_x["panel"].shape[1:], np.int8)}
    return TrainingView(train_x, view.train_labels, test_x, view.test_labels, view.mask, row,
                        view.baselines)


def independent_sites_bits(tokens: np.ndarray, labels: np.ndarray, class_af: np.ndarray) -> float:
    """Bits per token of `tokens` (int8 [n, 2, S] haplotypes or [n, S] dosages) under
    per-population independent sites with the frequencies `class_af` [C + 1, S] (Bernoulli alleles,
    Hardy-Weinberg dosages): the validation ELBO of an untrained `snp_unet` with the population
    prior, the floor a trained model must get under."""
    tokens = np.asarray(tokens)
    q = np.asarray(class_af, np.float64)[np.asarray(labels)]  # [n, S]
    if tokens.ndim == 3:
        x = tokens.astype(np.float64)
        nats = -(x * np.log(q[:, None]) + (1 - x) * np.log1p(-q[:, None]))
    else:
        probs = np.stack([(1 - q) ** 2, 2 * q * (1 - q), q ** 2], axis=-1)
        nats = -np.log(np.take_along_axis(probs, tokens[..., None].astype(np.int64), -1)[..., 0])
    return float(nats.mean() / np.log(2.0))
