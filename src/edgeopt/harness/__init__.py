"""Device-side code: needs only Python 3 + numpy + a runtime (no torch, no snakemake).

Everything in this package is copied to benchmark devices; keep it free of edgeopt imports
outside `edgeopt.harness` and of any third-party import other than numpy at module level.
"""
