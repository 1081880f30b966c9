# Shared by the rule files: jobs run `python -m edgeopt ...` with this interpreter and this checkout's
# src/ first on the path (so the workflow runs the code next to it, installed or not).
import shlex
import sys
from pathlib import Path

from edgeopt import jobguard, plan

shell.prefix(
    "set -euo pipefail; "
    'export EDGEOPT_JOB_PARENT="$PPID"; '  # jobs end with this Snakemake process (edgeopt.jobguard)
    f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; '
    f"export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

DATA = plan.data_dir(config)


onstart:
    jobguard.forward_stop_signals()  # SIGINT/SIGTERM stop running jobs, not only the scheduling
