"""`genodiff evaluate`: every metric for the synthetic cohort and for each reference generator.

Generators compared, each on the same footing:
- `model`: the synthetic cohort (its VCF calls and its features);
- the references of `references.py`: `real_test` (the ideal), `independent_sites` (the floor for
  LD), `train_copies` (the privacy failure), `mosaic_<N>` (HAPNEST-like mosaics of training
  haplotypes, one per mean segment length N in `EvalSettings.mosaic_segments`),
  `codec_roundtrip_<calling>` (real people through the codec and back, called by each method in
  `EvalSettings.roundtrip_calling`: the representation's own ceiling). Reference features are the
  codec's encoding of their calls.

Each generator carries haplotypes int8 [n, 2, S] where it has them (real splits of a dataset with
haplotype tokens, a synthetic folder whose VCF is phased, references that copy or mosaic them);
sections that need haplotypes fall back to genotype rows otherwise.

The metrics come in sections found by name in `sections.SECTIONS` (each one module in
`eval/sections/`): `transfer` (recovery rates, augmentation), `nnaa` (features and genotypes),
`fidelity` (population genetics against the real training split), `privacy`, `two_sample`
(a classifier two-sample test), `haplotype_privacy` (longest runs identical to a training
haplotype). `EvalSettings.sections` says which run, in which order. This module loads the inputs,
runs the sections and writes `report.json` (every number), the sections' PNG plots and
`report.html` (drawn by `render.py`) into one folder, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_dir, check_output, read_marker
from genodiff_jax.data import io, tables
from genodiff_jax.data.loader import PreparedDataset, load_prepared
from genodiff_jax.errors import InputError
from genodiff_jax.eval import render
from genodiff_jax.eval.sections import (
    DEFAULT_SECTIONS,
    SECTIONS,
    EvalContext,
    EvalSettings,
    Generator,
    Section,
    split_haplotypes,
)
from genodiff_jax.sampling.output import SYNTHETIC_FEATURES, SYNTHETIC_PANEL, SYNTHETIC_VCF

REPORT_KIND = "report"  # the marker kind of a report folder


def _variant_keys(chrom, pos, ref, alt) -> np.ndarray:
    return np.array([f"{c}:{p}:{r}:{a}" for c, p, r, a in zip(chrom, pos, ref, alt)])


def _aligned_calls(genotypes: io.Genotypes, variants: io.Variants, path) -> np.ndarray:
    """Columns of `genotypes` in the order of the dataset's variant table."""
    return genotypes.dosages[:, _aligned_columns(genotypes, variants, path)]


def _aligned_columns(genotypes: io.Genotypes, variants: io.Variants, path) -> list[int]:
    """Column of `genotypes` for each variant of the dataset's table."""
    got = genotypes.variants
    have = {k: j for j, k in enumerate(_variant_keys(got.chrom, got.pos, got.ref, got.alt))}
    want = _variant_keys(variants.chrom, variants.pos, variants.ref, variants.alt)
    missing = [k for k in want if k not in have]
    if missing:
        raise InputError(path, f"{len(missing)} of the dataset's {len(want)} variants are absent, "
                               f"e.g. {missing[0]}")
    return [have[k] for k in want]


def real_calls(data: PreparedDataset) -> np.ndarray:
    """The real genotypes the dataset was prepared from, rows in genotype-file order [N, S]."""
    source = data.summary["sources"]["genotypes"]
    if not Path(source).is_file():
        raise InputError(source, "the real genotypes this dataset was prepared from are needed for "
                                 "evaluation and are no longer there")
    genotypes = io.read_genotypes(source, progress=False)
    return _aligned_calls(genotypes, data.variants, source)


def load_synthetic(folder: str | os.PathLike, data: PreparedDataset) -> Generator:
    """A synthetic cohort folder: calls from synthetic.vcf.gz; features and labels from
    features.npz (a `genodiff sample` folder) or, where a generator writes genotypes only, features
    encoded from the calls by the dataset's codec and labels from synthetic.panel; haplotypes
    when every call of the VCF is phased."""
    folder = Path(folder)
    vcf, panel, npz = folder / SYNTHETIC_VCF, folder / SYNTHETIC_PANEL, folder / SYNTHETIC_FEATURES
    recorded = (read_marker(folder) or {}).get("dataset")
    if recorded and data.fingerprint and recorded != data.fingerprint:
        raise InputError(folder, f"was sampled from a model of another dataset (fingerprint "
                                 f"{recorded}; {data.path} has {data.fingerprint})")
    if not vcf.is_file():
        raise InputError(folder, f"not a synthetic cohort (no {SYNTHETIC_VCF}); "
                                 "run `genodiff sample`")
    if not npz.is_file() and not panel.is_file():
        raise InputError(folder, f"not a synthetic cohort (no {SYNTHETIC_FEATURES} and no "
                                 f"{SYNTHETIC_PANEL}); run `genodiff sample`")
    genotypes = io.read_vcf(vcf, progress=False, drop_monomorphic=False, haplotypes=True)
    if len(genotypes.samples) < 2:
        raise InputError(vcf, f"holds {len(genotypes.samples)} genome(s); evaluation compares "
                              "cohorts and needs at least 2 per cohort")
    columns = _aligned_columns(genotypes, data.variants, vcf)
    calls = genotypes.dosages[:, columns]
    haplotypes = genotypes.haplotypes(columns=columns) if genotypes.phased else None
    if not npz.is_file():
        labels = _panel_labels(panel, genotypes.samples, data)
        return Generator(calls, data.codec.encode(calls), labels, haplotypes)
    with np.load(npz) as z:
        features, labels = z["features"].astype(np.float32), z["labels"].astype(np.int32)
    if len(features) != len(calls) or len(labels) != len(calls):
        raise InputError(npz, f"{len(features)} feature rows and {len(labels)} labels for the "
                              f"{len(calls)} genomes of {SYNTHETIC_VCF}")
    if features.shape[1:] != data.mask.shape:
        raise InputError(npz, f"features {features.shape[1:]} do not match the dataset's "
                              f"{data.mask.shape}")
    bad = (labels < 0) | (labels >= data.num_classes)
    if bad.any():
        raise InputError(npz, f"label {int(labels[bad][0])} is outside the dataset's "
                              f"{data.num_classes} classes (0 to {data.num_classes - 1})")
    return Generator(calls, features, labels, haplotypes)


def _panel_labels(panel_path: Path, samples: np.ndarray, data: PreparedDataset) -> np.ndarray:
    """Class indices [n] of `samples` from the panel column the dataset was labelled by."""
    panel = tables.read_panel(panel_path)
    column = data.summary["label"]
    if column not in panel.columns:
        raise InputError(panel_path, f"no {column!r} column (the dataset's label); columns: "
                                     f"{', '.join(panel.columns) or 'none'}")
    row_of = {str(s): i for i, s in enumerate(panel.samples)}
    missing = [str(s) for s in samples if str(s) not in row_of]
    if missing:
        raise InputError(panel_path, f"{len(missing)} samples of {SYNTHETIC_VCF} are not in the "
                                     f"panel, e.g. {missing[0]}")
    names = panel.columns[column][[row_of[str(s)] for s in samples]]
    index_of = {name: i for i, name in enumerate(data.class_names)}
    unknown = sorted({str(n) for n in names} - set(index_of))
    if unknown:
        raise InputError(panel_path, f"unknown class {unknown[0]!r} in column {column!r}; the "
                                     f"dataset's classes: {', '.join(data.class_names)}")
    return np.array([index_of[str(n)] for n in names], np.int32)


def reference_generators(settings: EvalSettings) -> list[tuple[str, str, dict]]:
    """(generator name, reference name, options) per reference generator to score: `mosaic`
    becomes one `mosaic_<N>` per mean segment length N in `settings.mosaic_segments`,
    `codec_roundtrip` one `codec_roundtrip_<method>` per calling method in
    `settings.roundtrip_calling`."""
    out = []
    for name in settings.references:
        if name == "mosaic":
            out += [(f"mosaic_{n:g}", name, {"segment_length": n})
                    for n in settings.mosaic_segments]
        elif name == "codec_roundtrip":
            out += [(f"{name}_{method}", name, {"calling": method})
                    for method in settings.roundtrip_calling]
        else:
            out.append((name, name, {}))
    return out


def build_generators(data: PreparedDataset, synthetic: Generator | dict[str, Generator],
                     calls: np.ndarray, settings: EvalSettings) -> dict[str, Generator]:
    """The models' cohorts (one Generator: named "model") and every reference, with features from
    the codec and, where the dataset has haplotype tokens, haplotypes for the references that
    carry them. References draw the labels of the first model's cohort."""
    from genodiff_jax.eval.references import get_reference

    train_calls, test_calls = calls[data.train.index], calls[data.test.index]
    haplotypes = {"train_haplotypes": split_haplotypes(data, "train"),
                  "test_haplotypes": split_haplotypes(data, "test")}
    generators = dict(synthetic) if isinstance(synthetic, dict) else {"model": synthetic}
    synthetic = next(iter(generators.values()))
    rng = np.random.default_rng(settings.seed)  # drawn in order: a new reference goes last
    for generator, name, options in reference_generators(settings):
        ref_calls, ref_labels, *ref_haplotypes = get_reference(name)(
            train_calls, data.train.labels, synthetic.labels, rng, test_calls=test_calls,
            test_labels=data.test.labels, chroms=data.variants.chrom, codec=data.codec,
            **haplotypes, **options)
        ref_calls = np.asarray(ref_calls, np.int8)
        generators[generator] = Generator(ref_calls, data.codec.encode(ref_calls),
                                          np.asarray(ref_labels, np.int32),
                                          ref_haplotypes[0] if ref_haplotypes else None)
    return generators


# -- the report ------------------------------------------------------------------------------------

def configured_sections(names: tuple[str, ...]) -> dict[str, Section]:
    """The sections `names` asks for, in order; an unknown name raises (listing the known ones)."""
    if len(set(names)) != len(names):
        raise ValueError(f"evaluation sections named more than once: {', '.join(names)}")
    clash = set(names) & _REPORT_FIELDS
    if clash:  # a section's results are stored as report[name]
        raise ValueError(f"section names {', '.join(sorted(clash))} would overwrite report fields")
    return {name: SECTIONS[name] for name in names}


# The report's own fields (see `evaluate`), which a section's name must not take.
_REPORT_FIELDS = {"data", "synthetic", "n_train", "n_test", "n_synthetic", "n_variants",
                  "class_names", "generators", "settings", "seconds"}


def synthetic_folders(synthetic: str | os.PathLike | Mapping[str, str | os.PathLike]
                      ) -> dict[str, Path]:
    """{generator name: folder}; one folder is named "model"."""
    if isinstance(synthetic, Mapping):
        if not synthetic:
            raise InputError(None, "no synthetic cohort to evaluate")
        clash = set(synthetic) & {name for name, _, _ in reference_generators(EvalSettings())}
        if clash:
            raise InputError(None, f"synthetic cohorts named like references: {sorted(clash)}")
        return {str(k): Path(v) for k, v in synthetic.items()}
    return {"model": Path(synthetic)}


def evaluate(data_dir: str | os.PathLike,
             synthetic_dir: str | os.PathLike | Mapping[str, str | os.PathLike],
             out: str | os.PathLike, settings: EvalSettings = EvalSettings(), *,
             overwrite: bool = False) -> dict:
    """Run the configured sections for one synthetic cohort (named "model") or several ({name:
    folder}, e.g. both generator families), each beside the references; write report.json, the
    plots and report.html into `out` (an earlier report is replaced; anything else only with
    `overwrite`, never an input)."""
    sections = configured_sections(settings.sections)  # a bad name fails before any work
    folders = synthetic_folders(synthetic_dir)
    data = load_prepared(data_dir)
    # The real genotypes are read too: a report written over their folder would delete them.
    inputs = (data_dir, *folders.values(), data.summary["sources"]["genotypes"])
    check_output(out, REPORT_KIND, inputs=inputs, overwrite=overwrite)
    cohorts = {name: load_synthetic(folder, data) for name, folder in folders.items()}
    synthetic = next(iter(cohorts.values()))
    calls = real_calls(data)
    generators = build_generators(data, cohorts, calls, settings)
    ctx = EvalContext(data, calls, generators, settings, tuple(cohorts))
    results, timings = {}, {}
    for name, section in sections.items():
        t0 = time.perf_counter()
        results[name] = section.compute(ctx)
        timings[name] = round(time.perf_counter() - t0, 2)
    report = {
        "data": str(Path(data_dir)),
        "synthetic": {name: str(folder) for name, folder in folders.items()},
        "n_train": len(data.train), "n_test": len(data.test),
        "n_synthetic": int(len(synthetic.labels)), "n_variants": int(calls.shape[1]),
        "class_names": data.class_names, "generators": list(generators),
        "settings": dataclasses.asdict(settings), "seconds": timings, **results,
    }
    tables = [table for name, section in sections.items() if section.tables is not None
              for table in section.tables(results[name])]
    with atomic_dir(out, REPORT_KIND, inputs=inputs, overwrite=overwrite,
                    dataset=data.fingerprint) as tmp:
        plots = render.write_plots(tmp, ctx, sections, results)
        (tmp / "report.json").write_text(json.dumps(to_json(report), indent=2) + "\n")
        summary = (summary_header(report), summary_rows(report))
        (tmp / "report.html").write_text(render.render_html(report, summary, tables, plots,
                                                            summary_legend(report)))
    return to_json(report)


def _report_sections(report: dict) -> dict[str, Section]:
    # Reports written before sections could be chosen ran the four built-in ones.
    return {name: SECTIONS[name]
            for name in report["settings"].get("sections", DEFAULT_SECTIONS[:4])}


def summary_header(report: dict) -> list[str]:
    """"generator", then every column of the report's sections, in section order."""
    return ["generator", *(header for section in _report_sections(report).values()
                           for header, _ in section.columns)]


def summary_legend(report: dict) -> dict[str, str]:
    """{column header: one line (what it measures, which direction is better, the ideal)} for the
    columns whose section gives one."""
    return {header: text for section in _report_sections(report).values()
            for header, text in section.legend.items()}


def summary_rows(report: dict) -> list[list]:
    """One row per generator with the headline numbers of every section (`summary_header`)."""
    sections = _report_sections(report)
    return [[generator, *(cell(report[name], generator) for name, section in sections.items()
                          for _, cell in section.columns)]
            for generator in report["generators"]]


def to_json(obj):
    """Plain JSON: numpy scalars to numbers; arrays of over 64 values dropped (plots use them)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(v, np.ndarray) and v.size > 64:
                continue
            if isinstance(v, list) and v and isinstance(v[0], np.ndarray) and v[0].size > 64:
                continue
            out[str(k)] = to_json(v)
        return out
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
