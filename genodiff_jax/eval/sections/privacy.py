"""Section `privacy`: what each generator's calls give away about the real training split:
identical genomes, distance to closest record, membership inference (see `eval/privacy.py`).
report["privacy"] = {generator: {"identical", "dcr", "membership"}}."""

from __future__ import annotations

from genodiff_jax.eval.sections.base import REAL_IDEAL, SECTIONS, EvalContext, Section


def compute(ctx: EvalContext) -> dict:
    """Identical matches, DCR and the membership attack per generator."""
    from genodiff_jax.eval.privacy import distance_to_closest_record, identical_matches, privacy

    train, test = ctx.train_calls, ctx.test_calls
    out = {}
    for name, gen in ctx.generators.items():
        if name == REAL_IDEAL:
            # The attack scores the test split by its distance to the cohort; when the cohort *is*
            # the test split every non-member sits at distance 0, so the AUC says nothing.
            out[name] = {"identical": identical_matches(train, gen.calls),
                         "dcr": distance_to_closest_record(train, test, gen.calls),
                         "membership": {"auc": None,
                                        "note": "not applicable: the cohort is the test split"}}
        else:
            out[name] = privacy(train, test, gen.calls)
    return out


def membership_auc(result: dict, generator: str):
    auc = result[generator]["membership"]["auc"]
    return "-" if auc is None else auc


COLUMNS = [
    ("identical to train", lambda result, gen: result[gen]["identical"]["n_identical"]),
    ("membership AUC", membership_auc),
]

LEGEND = {
    "identical to train": "generated genomes identical to a training genome; lower is better, "
                          "ideal 0",
    "membership AUC": "distance-based membership inference on training vs held-out people; "
                      "0.5 is ideal, higher leaks membership",
}

SECTIONS.register("privacy", Section(compute, COLUMNS, legend=LEGEND))
