# Rules of the report stage (see README). Targets are planned in src/edgeopt/plan.py.
