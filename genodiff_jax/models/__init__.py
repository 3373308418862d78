"""The denoisers (DESIGN 1.3 and 6), found by name in `MODELS`; their layers in `models.ops`."""

# Importing the model modules registers them.
from genodiff_jax.models import (  # noqa: F401
    cnn_unet,
    mlp_cnn,
    mlp_unet,
    snp_panel,
    snp_unet,
    transformer,
)
from genodiff_jax.models.ops import WEIGHTS_DTYPES, inference_weights, weights_dtype
from genodiff_jax.models.registry import (
    MODELS,
    abstract_params,
    build_model,
    count_params,
    inference_compiler_options,
    register_model,
    representation,
)

__all__ = ["MODELS", "WEIGHTS_DTYPES", "abstract_params", "build_model", "count_params",
           "inference_compiler_options", "inference_weights", "register_model", "representation",
           "weights_dtype"]
