# Rules of the bench stage (see README). Targets are planned in src/edgeopt/plan.py.
