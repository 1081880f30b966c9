# Rules of the convert stage (see README). Targets are planned in src/edgeopt/plan.py.
