"""Sensitivity analysis and pruning: structured (DepGraph), zero-padded residual blocks, unstructured (AGP)."""
