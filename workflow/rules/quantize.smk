# Rules of the quantize stage (see README). Targets are planned in src/edgeopt/plan.py.
