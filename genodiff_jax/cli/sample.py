"""`genodiff sample` and `genodiff impute`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genodiff_jax.cli.base import add_overwrite_flag, add_weights_dtype_flag, command, parse_options


def add_panel_flags(p: argparse.ArgumentParser, *aliases: str) -> None:
    """--reference (and `aliases`) and --panel-size, for a run whose model reads a panel."""
    p.add_argument("--reference", *aliases, type=Path, default=None,
                   help="a phased VCF whose haplotypes a model that reads a reference panel (the "
                   "panel family) copies from instead of the run's training split (sampling: "
                   "drawn as the run's diffusion.panel_from says, from all of its people)")
    p.add_argument("--panel-size", type=int, default=None,
                   help="reference rows each person reads, for a model that reads a panel "
                   "(default: the run's diffusion.panel_size; imputing, twice it)")


def _sample_args(p: argparse.ArgumentParser) -> None:
    from genodiff_jax.sampling.calling import CALLERS, DEFAULT_CALLING

    p.add_argument("--workdir", required=True, type=Path, help="a `genodiff train` work dir")
    p.add_argument("--n", type=int, default=None,
                   help="people to generate (not needed with explicit --labels counts)")
    p.add_argument("--out", required=True, type=Path, help="folder for synthetic.vcf.gz etc.")
    p.add_argument("--sampler", default=None,
                   help="a sampler of the run's process (default: the run config's sampling."
                   "sampler; Gaussian: ancestral, ddim, dpmpp, dpmpp_3m, unipc)")
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: the config's sampling.steps, 0 = all)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance w (default: the config's, 0.1)")
    p.add_argument("--sampler-options", default=None, metavar="K=V,...",
                   help="the sampler's own options, e.g. eta=0.5 (ddim) or clip_x0=none "
                   "(Gaussian samplers; default clip_x0=data: the training range)")
    p.add_argument("--labels", default="uniform",
                   help="uniform | train (training frequencies) | case_rate=R | A=10,B=5")
    p.add_argument("--calling", default=None, choices=sorted(CALLERS),
                   help="gene-PCA runs: dosages -> calls: round, frequency (counts matched to the "
                   "decoded frequency, by rank) or hybrid (frequency where the codec keeps the "
                   f"variant, round elsewhere) (default {DEFAULT_CALLING}, see the README)")
    p.add_argument("--plink", action="store_true", help="also write synthetic.bed/.bim/.fam")
    p.add_argument("--pgen", action="store_true",
                   help="also write PLINK 2 synthetic.pgen/.pvar/.psam (phased when the cohort is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: bounded by memory")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    p.add_argument("--raw-params", action="store_true", help="raw instead of EMA parameters")
    p.add_argument("--data", type=Path, default=None, help="override the run's dataset folder")
    add_panel_flags(p, "--panel-vcf")
    add_weights_dtype_flag(p)
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("sample", "generate a synthetic cohort from a trained run, written as genotypes",
         _sample_args)
def _sample(args: argparse.Namespace) -> None:
    from genodiff_jax.commands.sample import sample_cohort
    from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings

    sampling = SamplingSettings(args.sampler, args.steps, args.guidance,
                                parse_options(args.sampler_options), seed=args.seed,
                                batch_size=args.batch_size, weights_dtype=args.weights_dtype,
                                reference=args.reference, panel_size=args.panel_size)
    output = OutputSettings(args.out, overwrite=args.overwrite, plink=args.plink, pgen=args.pgen)
    summary = sample_cohort(args.workdir, output, args.n, sampling, labels=args.labels,
                            calling=args.calling, data_dir=args.data,
                            checkpoint=args.checkpoint, ema=not args.raw_params,
                            progress=not args.quiet)
    print(json.dumps(summary, default=str))


def _impute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, type=Path,
                   help="a `genodiff train` work dir of the masked-diffusion family (haplotypes)")
    p.add_argument("--vcf", required=True, type=Path,
                   help="phased genotypes with no-calls (./.) or missing sites to fill")
    p.add_argument("--out", required=True, type=Path, help="folder for imputed.vcf.gz, dosages.npz")
    p.add_argument("--panel", type=Path, default=None,
                   help="the people's classes (the run's label column); default: unconditional")
    p.add_argument("--mask-sites", type=Path, default=None,
                   help="a file of chrom:pos sites to hide and impute (e.g. for a benchmark)")
    add_panel_flags(p)
    p.add_argument("--draws", type=int, default=1,
                   help="fillings (1 to 1000; more than 1 only with --dosage draws): the first "
                   "is written to imputed.vcf.gz (GT), their expected values are averaged into "
                   "the dosage")
    p.add_argument("--dosage", default="posterior",
                   help="the dosage written to dosages.npz and to imputed.vcf.gz's FORMAT/DS: "
                   "'posterior' (one model call from what is observed, the default) or 'draws' "
                   "(averaged over the fillings)")
    p.add_argument("--steps", type=int, default=None, help="unmasking steps (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: bounded by memory")
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("impute", "fill missing genotypes with a masked-diffusion run (inpainting)", _impute_args)
def _impute(args: argparse.Namespace) -> None:
    from genodiff_jax.commands.impute import format_summary, impute_vcf
    from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings

    sampling = SamplingSettings(steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                                reference=args.reference, panel_size=args.panel_size)
    summary = impute_vcf(args.workdir, args.vcf, OutputSettings(args.out, args.overwrite),
                         panel=args.panel, mask_sites=args.mask_sites, draws=args.draws,
                         dosage=args.dosage, sampling=sampling, progress=not args.quiet)
    print(f"impute: {format_summary(summary)}", file=sys.stderr)
    print(json.dumps(summary))
