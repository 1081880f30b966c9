# Shared by the rule files: jobs run `python -m edgeopt ...` with this interpreter and this checkout's
# src/ first on the path (so the workflow runs the code next to it, installed or not).
import shlex
import sys
from pathlib import Path

from edgeopt import plan

shell.prefix(
    "set -euo pipefail; "
    f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; '
    f"export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

DATA = plan.data_dir(config)

# Boards are a shared resource: every benchmark/retraining job holds one `device_<name>` unit of its
# device, and each enabled device gets a limit of 1 here (a resource given no limit is unlimited in
# Snakemake), so `--cores 8` never puts two jobs on one board. `--resources device_<name>=N` wins.
for _name, _limit in plan.device_resource_limits(config).items():
    if _name not in workflow.global_resources:
        workflow.global_resources[_name] = _limit
