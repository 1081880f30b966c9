#!/usr/bin/env bash
# The ResNet-56 pruning benchmark on a GPU machine in one command: ResNet-56 trained on the whole JPEG CIFAR-10
# set, its sensitivity analysed, pruned to 2.5x fewer MACs and fine-tuned (distilled) on the GPU, then baseline
# and pruned models timed side by side in ONNX Runtime on that machine's CPU (benchmarks/bench_prune.py).
#
#   bash scripts/gpu-bench-prune.sh            # in a checkout, with a python that has torch (CUDA) + edgeopt's deps
#
# A GPU machine without internet access: on a machine with it, `bash scripts/gpu-bench-prune.sh --stage` puts
# the wheels a bare torch image usually lacks (torch-pruning, jsonschema and its dependencies, for Python
# $PYVER, default 3.12) and the data tarball into .whl/ (~20 MB); copy the checkout with .whl/ over and run the
# script there: it installs those wheels into /tmp/site when torch_pruning or jsonschema are missing.
#
# The report is $OUT/bench_prune.log (default results/gpu-bench-prune/out); metrics, recipes and the sensitivity
# table are copied under $OUT. Training and fine-tuning checkpoint every epoch in $WORK, so a run that is
# stopped resumes when the same command is repeated. Knobs (environment): MODEL, EPOCHS, FINETUNE_EPOCHS,
# ORDERS (planner orders, comma-separated), CONTROL (1: also fine-tune the unpruned baseline alike, the
# equal-budget control; 0: off), DEVICE, TRAIN_PER_CLASS, TEST_PER_CLASS, THREADS, PYTHON, PYVER, OUT, WORK.
# Check it on a CPU with small knobs: DEVICE=cpu EPOCHS=1 FINETUNE_EPOCHS=1 TRAIN_PER_CLASS=20.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
stage=.whl
shared_tar=${EDGEOPT_CIFAR_JPEG:-../shared/datasets/cifar10-jpeg.tar.gz}   # the full CIFAR-10 JPEG set

if [ "${1:-}" = "--stage" ]; then
    mkdir -p "$stage"
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$stage" torch-pruning==1.6.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
        referencing==0.37.0 rpds-py==2026.9.1
    install -m 0644 "$shared_tar" "$stage/"
    du -sh "$stage"
    exit 0
fi

model=${MODEL:-resnet56}
out=${OUT:-results/gpu-bench-prune/out}
work=${WORK:-results/gpu-bench-prune/work}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
if ! "$py" -c 'import torch_pruning, jsonschema' 2>/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$stage"/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
tar=$stage/cifar10-jpeg.tar.gz
[ -f "$tar" ] || tar=$shared_tar

collect() {
    (cd "$work" && find . \( -name '*.json' -o -name '*.yaml' -o -name '*.csv' -o -name '*.png' \) \
        -not -path './data/*' -exec cp --parents {} "$out/" \;) || true
}
trap collect EXIT
if [ "${DEVICE:-cuda}" != cpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
fi
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' | tee -a "$out/gpu.txt"
PYTHONUNBUFFERED=1 "$py" benchmarks/bench_prune.py --model "$model" --device "${DEVICE:-cuda}" --tar "$tar" \
    --workdir "$work" --train-per-class "${TRAIN_PER_CLASS:-5000}" --test-per-class "${TEST_PER_CLASS:-1000}" \
    --epochs "${EPOCHS:-30}" --batch-size 256 --channels-last --sens-val-limit 2000 --reuse \
    --finetune-epochs "${FINETUNE_EPOCHS:-40}" --finetune-lr 0.1 --distill-alpha 0.8 --distill-temperature 4 \
    --orders "${ORDERS:-loss}" $([ "${CONTROL:-1}" = 1 ] && echo --control) --threads "${THREADS:-2}" 2>&1 | tee "$out/bench_prune.log"
