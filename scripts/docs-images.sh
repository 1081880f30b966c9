#!/usr/bin/env bash
# Regenerate the README pictures: docs/dag.png (the tiny preset's whole DAG, `snakemake --dag | dot`),
# docs/rulegraph.png (`snakemake --rulegraph | dot`)
# and docs/report.png (results/report/index.html of a finished tiny run, shot in headless Chromium).
#   scripts/docs-images.sh WORKDIR     # WORKDIR: where the tiny preset ran (it must hold results/report/)
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=${1:?usage: scripts/docs-images.sh WORKDIR-of-a-finished-tiny-run}
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
"$python" -m snakemake -s Snakefile --directory "$workdir" --configfile config/tiny.yaml \
    --cores 1 --forceall --dag 2>/dev/null | dot -Tpng -Gdpi=50 > docs/dag.png
"$python" -m snakemake -s Snakefile --directory "$workdir" --configfile config/tiny.yaml \
    --cores 1 --forceall --rulegraph 2>/dev/null | dot -Tpng -Gdpi=70 > docs/rulegraph.png
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --window-size=1280,${REPORT_HEIGHT:-2200} --screenshot="$PWD/docs/report.png" \
    "file://$(realpath "$workdir")/results/report/index.html" 2>/dev/null
rm -rf "$profile"
ls -l docs/dag.png docs/rulegraph.png docs/report.png
