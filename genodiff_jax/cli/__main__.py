"""`python -m genodiff_jax.cli ...`: the `genodiff` command."""

import sys

from genodiff_jax.cli import main

sys.exit(main())
