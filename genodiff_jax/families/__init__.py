"""The generator families, one registry entry each: what differs between generating gene-PCA
features (the Gaussian family), genotype tokens (the masked family) and genotype tokens read
beside a reference panel (the panel family), so training, the pipeline, the sweep, imputation
and the benchmark ask the entry and never branch on the family.

A family is found by its process's `representation` (`family_of(process)`). A third one is one
module that calls `register_family` (the entry, with its dataset view): see
`tests/test_plugins.py` for independent sites added from outside the package.
"""

from genodiff_jax.families import gene_pca, masked, panel  # noqa: F401,E402  (they register themselves)
from genodiff_jax.families.base import (
    FAMILIES,
    Example,
    Family,
    Genotypes,
    family_of,
    register_family,
    unregister_family,
)

__all__ = ["FAMILIES", "Example", "Family", "Genotypes", "family_of", "register_family",
           "unregister_family"]
