#!/usr/bin/env bash
# Make, once per machine, the Python venv that stands in for a board in the tests: numpy + onnxruntime +
# ai-edge-litert only (envs/device-x86.txt), no torch, no edgeopt. Prints the venv's python path.
# Rebuilt only when the requirements file changes. Used by tests/device_fixtures.py and .ci/run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
req="$root/envs/device-x86.txt"
dest="${EDGEOPT_DEVICE_VENV:-$HOME/.cache/edgeopt-device-venv}"
python="${EDGEOPT_DEVICE_BASE_PYTHON:-python3}"
stamp="$(sha256sum "$req" | cut -d' ' -f1)"
mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
if [ -f "$dest/.edgeopt-stamp" ] && [ "$(cat "$dest/.edgeopt-stamp")" = "$stamp" ] \
    && "$dest/bin/python" -c 'import numpy, onnxruntime, ai_edge_litert.interpreter' 2>/dev/null; then
    echo "$dest/bin/python"
    exit 0
fi
rm -rf "$dest"
"$python" -m venv "$dest" >&2
"$dest/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
"$dest/bin/python" -c 'import numpy, onnxruntime, ai_edge_litert.interpreter' >&2
echo "$stamp" > "$dest/.edgeopt-stamp"
echo "$dest/bin/python"
