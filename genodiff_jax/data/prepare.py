"""`genodiff prepare`: genotypes + panel + genes -> a saved gene-PCA dataset (DESIGN 3, data flow).

VCF/PLINK -> dosages -> SNP-to-gene assignment -> stratified split by individual -> codec fitted on
the training split -> features -> TFDS (array_record) + codec + variant table + summary.json, and
the genotype tokens of each split (`tokens/train.npy`, `tokens/test.npy`: haplotypes int8 [n, 2, S]
when every call is phased, else dosages int8 [n, S], columns as the variant table). Everything is
written into a temporary folder that is renamed to the output only when complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_dir, check_output
from genodiff_jax.data import io, tables
from genodiff_jax.data import tfds as tfds_io
from genodiff_jax.data.codec import COMPONENT_RULES, GeneCodec
from genodiff_jax.data.genes import assign_genes, window_genes
from genodiff_jax.errors import InputError

SUMMARY = "summary.json"
CODEC = "codec.npz"
VARIANTS = "variants.npz"
DATASET_KIND = "dataset"
SAMPLES = "samples.tsv"
GENES = "genes.tsv"
TOKENS_DIR = "tokens"
TOKEN_KINDS = ("auto", "haplotypes", "genotypes")
TEST_FRACTION = 0.1  # the held-out share by default (--test-fraction)
_TOKEN_ROWS = 256  # people converted to tokens at a time (bounds the extra memory)


def match_panel(genotypes: io.Genotypes, panel: tables.Panel, panel_path: str | os.PathLike,
                label: str) -> np.ndarray:
    """The label of every genotyped sample, in genotype order; names missing samples if any."""
    if label not in panel.columns:
        raise InputError(panel_path, f"unknown label column '{label}' (panel columns: "
                                     f"{', '.join(panel.columns)})")
    row_of = {s: i for i, s in enumerate(panel.samples)}
    missing = [s for s in genotypes.samples if s not in row_of]
    if missing:
        raise InputError(panel_path, f"{len(missing)} of {len(genotypes.samples)} genotyped "
                                     f"samples are not in the panel, e.g. {', '.join(missing[:3])}")
    return panel.columns[label][[row_of[s] for s in genotypes.samples]]


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int,
                     panel_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices, stratified by label, seeded."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise InputError(None, f"--test-fraction must be in (0, 1), got {test_fraction}")
    names, counts = np.unique(labels, return_counts=True)
    if (counts < 2).any():
        raise InputError(panel_path, f"class '{names[counts < 2][0]}' has a single sample; a "
                                     "stratified split needs at least 2 per class")
    rows = np.arange(len(labels))
    try:
        train, test = train_test_split(rows, test_size=test_fraction, stratify=labels,
                                       random_state=seed)
    except ValueError as e:
        raise InputError(panel_path, f"cannot split {len(rows)} samples of {len(names)} classes "
                                     f"with --test-fraction {test_fraction}: {e}") from None
    return np.sort(train), np.sort(test)


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """What `genodiff prepare` is asked: genes from a BED (`genes`) or fixed windows of `window`
    SNPs (exactly one), the panel column to condition on, the held-out share and the split's
    seed, whether a skipped record is an error (`strict`), the per-gene component rule
    (`COMPONENT_RULES`) and the token kind ("haplotypes" needs a VCF whose every call is phased,
    "genotypes" dosages, "auto" haplotypes when the file allows, else genotypes)."""

    genes: str | os.PathLike | None = None
    window: int | None = None
    label: str = "pop"
    test_fraction: float = TEST_FRACTION
    seed: int = 0
    strict: bool = False
    components: str = "paper"
    tokens: str = "auto"


def prepare_dataset(vcf: str | os.PathLike, panel: str | os.PathLike, out: str | os.PathLike,
                    settings: PrepareSettings = PrepareSettings(), *, overwrite: bool = False,
                    progress: bool = True) -> dict:
    """Run the whole preparation of `settings`; returns the summary that is also saved as
    summary.json. An existing `out` is replaced only when it is an earlier dataset or
    `overwrite` is set (`atomic.check_output`)."""
    genes, window, label = settings.genes, settings.window, settings.label
    test_fraction, seed, tokens = settings.test_fraction, settings.seed, settings.tokens
    strict, components = settings.strict, settings.components
    inputs = _input_files(vcf, panel, genes)
    check_output(out, DATASET_KIND, inputs=inputs, overwrite=overwrite)
    if (genes is None) == (window is None):
        raise InputError(None, "give exactly one of --genes BED or --window N")
    if window is not None and window < 1:
        raise InputError(None, f"--window must be >= 1, got {window}")
    if not 0.0 < test_fraction < 1.0:  # checked before the long read, not only at the split
        raise InputError(None, f"--test-fraction must be in (0, 1), got {test_fraction}")
    if tokens not in TOKEN_KINDS:
        raise InputError(None, f"--tokens must be one of {', '.join(TOKEN_KINDS)}, got {tokens!r}")
    is_vcf = io.reader_for(vcf) is io.read_vcf
    if tokens == "haplotypes" and not is_vcf:
        raise InputError(vcf, "--tokens haplotypes needs a phased VCF/BCF; PLINK has no phase")
    keep_alleles = is_vcf and tokens != "genotypes"
    extra = {"haplotypes": True} if keep_alleles else {}
    genotypes = io.read_genotypes(vcf, strict=strict, progress=progress, **extra)
    if tokens == "haplotypes" and not genotypes.phased:
        raise InputError(vcf, "--tokens haplotypes needs every call phased (a|b); some are not")
    token_kind = "haplotypes" if keep_alleles and genotypes.phased else "genotypes"
    panel_table = tables.read_panel(panel)
    label_values = match_panel(genotypes, panel_table, panel, label)
    if genes is not None:
        assignment = assign_genes(genotypes.variants, tables.read_bed(genes), genes)
    else:
        assignment = window_genes(genotypes.variants, window)

    class_names, y = np.unique(label_values, return_inverse=True)
    train, test = stratified_split(label_values, test_fraction, seed, panel)
    # Fitted and encoded on the whole matrix; only the codec and the variant table drop the SNPs
    # that belong to no gene, so the genotypes are never copied.
    codec = GeneCodec.fit(genotypes.dosages, assignment, rows=train,
                          rule=COMPONENT_RULES[components], progress=progress)
    features = codec.encode(genotypes.dosages, progress=progress)
    used = assignment.used_snps
    codec, variants = codec.restricted_to(used), genotypes.variants.take(used)

    counts = genotypes.counts
    skipped = {"multiallelic": counts.n_multiallelic, "indel": counts.n_indel,
               "monomorphic": counts.n_monomorphic, "no_gene": assignment.n_unassigned}
    n_comp, n_comp_genes = np.unique(codec.n_components, return_counts=True)
    summary = {
        "n_samples": int(len(y)),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "n_records": counts.n_records,
        "n_variants_used": int(len(used)),
        "n_variants_skipped": int(sum(skipped.values())),
        "skipped": skipped,
        "n_missing_filled": counts.n_missing_filled,
        "n_haploid_calls": counts.n_haploid,
        "n_genes": codec.n_genes,
        "feature_shape": list(codec.feature_shape),
        "n_classes": int(len(class_names)),
        "label": label,
        "class_names": class_names.tolist(),
        "class_counts": {str(c): int(n) for c, n in zip(class_names, np.bincount(y))},
        "genes_by_components": {str(int(k)): int(n) for k, n in zip(n_comp, n_comp_genes)},
        "tokens": token_kind,
        "test_fraction": test_fraction,
        "seed": seed,
        "sources": {"genotypes": os.fspath(vcf), "panel": os.fspath(panel),
                    "genes": None if genes is None else os.fspath(genes), "window": window},
    }
    assert summary["n_variants_used"] + summary["n_variants_skipped"] == counts.n_records

    with atomic_dir(out, DATASET_KIND, inputs=inputs, overwrite=overwrite) as tmp:
        splits = {name: {"features": features[rows], "label": y[rows].astype(np.int64),
                         "sample": genotypes.samples[rows], "index": rows.astype(np.int64)}
                  for name, rows in (("train", train), ("test", test))}
        tfds_io.write_dataset(tmp, splits)
        for name, rows in (("train", train), ("test", test)):
            _write_tokens(tmp / TOKENS_DIR / f"{name}.npy", genotypes, rows, used, token_kind)
        codec.save(tmp / CODEC)
        with open(tmp / VARIANTS, "wb") as f:
            np.savez(f, **variants.to_dict())
        _write_tables(tmp, genotypes.samples, label_values, train, codec)
        summary["fingerprint"] = fingerprint(tmp)
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _input_files(vcf, panel, genes) -> list[Path]:
    """The files `prepare` reads (a PLINK .bed comes with its .bim and .fam)."""
    files = [Path(vcf), Path(panel)] + ([] if genes is None else [Path(genes)])
    if Path(vcf).suffix == ".bed":
        files += [Path(vcf).with_suffix(".bim"), Path(vcf).with_suffix(".fam")]
    return files


def fingerprint(folder: str | os.PathLike) -> str:
    """A dataset's identity: a hash of the contents (not the bytes on disk, which carry zip
    timestamps) of its codec and variant table. A work dir and a synthetic cohort record it, so a
    cohort is never scored against, or sampled with, a different dataset's codec."""
    import hashlib

    digest = hashlib.sha256()
    for name in (CODEC, VARIANTS):
        with np.load(Path(folder) / name, allow_pickle=False) as z:
            for key in sorted(z.files):
                a = np.ascontiguousarray(z[key])
                digest.update(f"{name}/{key}:{a.dtype.str}:{a.shape}".encode())
                digest.update(a.tobytes())
    return digest.hexdigest()[:16]


def _write_tokens(path: Path, genotypes: io.Genotypes, rows: np.ndarray, columns: np.ndarray,
                  kind: str) -> None:
    """The split's tokens as .npy, written in blocks of people (memory: one block extra; plain
    writes, not a memmap, whose dirty pages would count as the process's own memory)."""
    n, S = len(rows), len(columns)
    shape = (n, 2, S) if kind == "haplotypes" else (n, S)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int8)),
                  "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, _TOKEN_ROWS):
            block = rows[start:start + _TOKEN_ROWS]
            if kind == "haplotypes":
                tokens = genotypes.haplotypes(block, columns)
            else:
                tokens = genotypes.dosages[block][:, columns]
            f.write(np.ascontiguousarray(tokens, np.int8).tobytes())


def _write_tables(folder: Path, samples: np.ndarray, labels: np.ndarray, train: np.ndarray,
                  codec: GeneCodec) -> None:
    """Human-readable side tables: who is in which split, and each gene's size and components."""
    in_train = np.zeros(len(samples), bool)
    in_train[train] = True
    with open(folder / SAMPLES, "w") as f:
        f.write("sample\tlabel\tsplit\n")
        for s, lab, tr in zip(samples, labels, in_train):
            f.write(f"{s}\t{lab}\t{'train' if tr else 'test'}\n")
    sizes = np.zeros(codec.n_genes, np.int64)
    for b in codec.buckets:
        sizes[b.slots] = (b.columns >= 0).sum(axis=1)
    with open(folder / GENES, "w") as f:
        f.write("slot\tgene\tn_snps\tn_components\n")
        for g, (name, n, k) in enumerate(zip(codec.gene_names, sizes, codec.n_components)):
            f.write(f"{g}\t{name}\t{n}\t{k}\n")


def format_summary(summary: dict) -> str:
    """A few lines for people: sizes, site policy counts, classes."""
    sk = summary["skipped"]
    lines = [
        f"samples   {summary['n_samples']} ({summary['n_train']} train, {summary['n_test']} test)",
        f"variants  {summary['n_records']} records: {summary['n_variants_used']} used, "
        f"{summary['n_variants_skipped']} skipped ({sk['multiallelic']} multi-allelic, "
        f"{sk['indel']} indel/MNP, {sk['monomorphic']} monomorphic, "
        f"{sk['no_gene']} without a gene); "
        f"{summary['n_missing_filled']} missing calls filled"
        + (f"; {summary['n_haploid_calls']} haploid calls (X/Y/MT) read as homozygous"
           if summary.get("n_haploid_calls") else ""),
        f"genes     {summary['n_genes']} (by components: "
        + ", ".join(f"{n} with {k}" for k, n in summary["genes_by_components"].items())
        + f"); features {tuple(summary['feature_shape'])}",
        f"classes   {summary['n_classes']} by '{summary['label']}': "
        + ", ".join(f"{c} {n}" for c, n in list(summary["class_counts"].items())[:8])
        + (" ..." if summary["n_classes"] > 8 else ""),
    ]
    return "\n".join(lines)
