"""`python -m edgeopt <stage> ...` — the entry point every Snakemake rule calls."""

from edgeopt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
