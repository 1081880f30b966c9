# Rules of the retrain stage (see README). Targets are planned in src/edgeopt/plan.py.
