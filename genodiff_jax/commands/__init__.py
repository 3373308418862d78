"""The library functions behind the `genodiff` subcommands that join several layers: `sample`
(`sample_cohort`: a trained run -> a cohort on disk, through the run's family), `impute`
(`impute_vcf`: a VCF's missing genotypes filled, with the family's inputs) and `run` (the
whole pipeline on the embedded cohort). `cli/` parses arguments and calls these."""
