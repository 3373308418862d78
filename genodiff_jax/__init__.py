"""genodiff-jax: class-conditional diffusion on per-gene PCA features of genotypes."""

__version__ = "0.1.0"
