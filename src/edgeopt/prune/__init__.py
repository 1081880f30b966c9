"""Sensitivity analysis and pruning: structured (DepGraph), zero-padded residual blocks, unstructured (AGP)."""

#: pruned variants made from a recipe (`layout.RECIPE`), in planning order
RECIPE_VARIANTS = ("pruned", "zeropad", "sparse")

#: the `prune` keys each recipe variant's planner (`prune.planner.plan_pruning`) reads: editing one of
#: them replans that variant, editing any other key does not (the planner gets only these)
PLAN_KEYS: dict[str, tuple[str, ...]] = {
    "pruned": ("importance", "round_to", "ignore", "max_ratio", "order", "target", "schedule", "regularize", "finetune"),
    "zeropad": ("importance", "round_to", "ignore", "zeropad", "finetune"),
    "sparse": ("sparse", "finetune"),
}  # fmt: skip
