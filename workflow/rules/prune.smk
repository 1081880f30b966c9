# Rules of the prune stage (see README). Targets are planned in src/edgeopt/plan.py.
