# edgeopt: data -> trained -> pruned -> quantized -> converted -> benchmarked -> reported.
# Thin by design: config validation, includes and `rule all`; all logic lives in src/edgeopt.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import min_version, validate

from edgeopt.config import SCHEMA_PATH, check_config
from edgeopt.errors import EdgeoptError

min_version("9.0")


configfile: "config.yaml"


try:
    check_config(config)
except EdgeoptError as exc:
    raise SystemExit(f"edgeopt: {exc}")
validate(config, str(SCHEMA_PATH))

from edgeopt import plan as _plan

try:  # models from outside the registry are built and checked once (then cached); what they skip is said here
    for _note in _plan.model_notes(config):
        print(f"edgeopt: {_note}", file=sys.stderr)
except EdgeoptError as exc:
    raise SystemExit(f"edgeopt: {exc}")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        plan.all_targets(config),
