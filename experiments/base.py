"""The base config every experiment starts from: `genodiff_jax/train/defaults.py` (the paper's 1KG
recipe, DESIGN 1.2-1.3, and every key a config may set, documented there). It lives in the package
because it is also the schema every config is checked against (`genodiff_jax/train/schema.py`).

    genodiff train --data DATA --workdir W --config experiments/base.py
"""

from genodiff_jax.train.defaults import MLP_CNN_PAPER, get_config

__all__ = ["MLP_CNN_PAPER", "get_config"]
