"""Speedup of layer freezing and reduced precision against full fp32 retraining, in one run.

Same as `python -m edgeopt bench-retrain`; see `--help`. Example (this repo's README numbers):
    PYTHONPATH=src python benchmarks/bench_retrain.py --model resnet20 --images 2048 --epochs 3 --threads 2
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from edgeopt.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-retrain", *sys.argv[1:]]))
