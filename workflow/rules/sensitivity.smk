# Rules of the sensitivity stage (see README). Targets are planned in src/edgeopt/plan.py.
