# Shared by the rule files: jobs run `python -m edgeopt ...` with this interpreter and this checkout's
# src/ first on the path (so the workflow runs the code next to it, installed or not).
# Every path comes from edgeopt.layout (patterns) or edgeopt.plan (planned targets).
import shlex
import sys
from pathlib import Path

from edgeopt import formats, layout, plan

shell.prefix(
    "set -euo pipefail; "
    f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; '
    f"export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

DATA = plan.data_files(config)
