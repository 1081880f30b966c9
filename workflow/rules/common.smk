# Shared by the rule files: jobs run `python -m edgeopt ...` with this checkout's src/ first on the
# path, and with the interpreter running Snakemake unless `--sdm conda` puts the rule's env first
# (edgeopt.jobshell says why). Every path comes from edgeopt.layout (patterns) or edgeopt.plan
# (planned targets).
import shlex  # used by the rule files
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from edgeopt import formats, jobguard, layout, plan
from edgeopt.jobshell import shell_prefix
from edgeopt.model_entries import FACTORIES_ENV, factories_json

_in_conda = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_prefix = shell_prefix(
    sys.executable, Path(workflow.basedir) / "src", in_conda_env=_in_conda
)
# the config's factory models, so every job can build (and load) them by name
_prefix += f"export {FACTORIES_ENV}={shlex.quote(factories_json(config))}; "
# Snakemake formats the prefix like a shell command: braces are doubled to stay literal.
shell.prefix(_prefix.replace("{", "{{").replace("}", "}}"))

DATA = plan.data_files(config)

# Boards are a shared resource: every benchmark/retraining job holds one `device_<name>` unit of its
# device, and each enabled device gets a limit of 1 here (a resource given no limit is unlimited in
# Snakemake), so `--cores 8` never puts two jobs on one board. `--resources device_<name>=N` wins.
for _name, _limit in plan.device_resource_limits(config).items():
    if _name not in workflow.global_resources:
        workflow.global_resources[_name] = _limit


onstart:
    jobguard.forward_stop_signals()  # SIGINT/SIGTERM stop running jobs, not only the scheduling
