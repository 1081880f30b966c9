"""The shell prefix every workflow job runs with (`shell.prefix` in workflow/rules/common.smk).

Jobs call `python -m edgeopt ...`; the prefix decides which `python` that is and which edgeopt it
imports. Normally it is the interpreter running Snakemake (its folder first on PATH), so the jobs
use the same environment as the workflow. Under `snakemake --sdm conda` each job runs inside its
rule's conda env, whose python Snakemake has already put first on PATH: the prefix must then leave
PATH alone, or the host's interpreter would run the job and the conda env would be defeated.
Either way this checkout's `src/` comes first on PYTHONPATH, so the jobs run the code beside the
Snakefile, installed or not.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def shell_prefix(python: str | Path, src: str | Path, in_conda_env: bool) -> str:
    """Bash commands prepended to every job: strict mode, the interpreter's PATH, the checkout's src/."""
    # jobs end with this Snakemake process (edgeopt.jobguard watches it)
    parts = ["set -euo pipefail; ", 'export EDGEOPT_JOB_PARENT="$PPID"; ']
    if not in_conda_env:
        parts.append(f'export PATH={shlex.quote(str(Path(python).parent))}:"$PATH"; ')
    parts.append(f"export PYTHONPATH={shlex.quote(str(src))}${{PYTHONPATH:+:$PYTHONPATH}}; ")
    return "".join(parts)
