"""Evaluation (DESIGN 1.4, 2): classifiers, recovery, NNAA, pop-gen fidelity, privacy, references.

Submodules are imported where they are used (`from genodiff_jax.eval import nnaa`), so importing
this package stays cheap and pulls in neither JAX nor scikit-learn.
"""
