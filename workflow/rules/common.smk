# Shared by the rule files: jobs run `python -m edgeopt ...` with this interpreter and this checkout's
# src/ first on the path (so the workflow runs the code next to it, installed or not).
import shlex
import sys
from pathlib import Path

from edgeopt import plan
from edgeopt.model_entries import FACTORIES_ENV, factories_json

shell.prefix(
    "set -euo pipefail; "
    f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; '
    f"export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    # the config's factory models, so every job can build (and load) them by name
    f"export {FACTORIES_ENV}={shlex.quote(factories_json(config)).replace('{', '{{').replace('}', '}}')}; "
)

DATA = plan.data_dir(config)
