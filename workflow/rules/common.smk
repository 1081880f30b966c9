# Shared helpers for the rule files: the interpreter that runs `python -m edgeopt` and the plan.
import shlex
import sys

from edgeopt import plan

EDGEOPT = f"{shlex.quote(sys.executable)} -m edgeopt"
DATA = plan.data_dir(config)
