"""Host side, in the ORT training env: training artifacts from a training-mode ONNX export.

Usage: python ort_artifacts.py MODEL.onnx OUT_DIR SPEC.json, where SPEC.json has
`requires_grad` and `frozen_params` (initializer names). Writes training_model.onnx,
eval_model.onnx, optimizer_model.onnx and checkpoint into OUT_DIR (needs onnx + onnxruntime-training).
"""

from __future__ import annotations

import json
import logging
import os
import sys

import onnx
import onnxruntime

try:
    from . import ort_api
except ImportError:  # run as a plain script
    import ort_api  # type: ignore[no-redef]


def drop_running_stat_outputs(model: onnx.ModelProto) -> int:
    """Drop inference-mode BatchNormalization's running-mean/var outputs in the eval graph.

    ORT's artifact generator flips `training_mode` to 0 for the eval graph but keeps the extra
    outputs, which ORT then rejects ("number of op outputs should be 1"). ORT training does not
    write them back to the checkpoint either, so running statistics stay as exported.
    """
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    dropped = 0
    for node in model.graph.node:
        mode = next((a.i for a in node.attribute if a.name == "training_mode"), 0)
        if node.op_type == "BatchNormalization" and len(node.output) > 1 and not mode:
            if any(o in used for o in node.output[1:]):
                continue
            del node.output[1:]
            dropped += 1
    return dropped


def main(model_path: str, out_dir: str, spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    os.makedirs(out_dir, exist_ok=True)
    onnxruntime.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.WARNING)
    art = ort_api.artifacts()
    model = onnx.load(model_path)
    art.generate_artifacts(
        model,
        requires_grad=spec["requires_grad"],
        frozen_params=spec["frozen_params"],
        loss=art.LossType.CrossEntropyLoss,
        optimizer=art.OptimType.AdamW,
        artifact_directory=out_dir,
        additional_output_names=spec.get("additional_output_names", ["logits"]),
    )
    eval_path = os.path.join(out_dir, "eval_model.onnx")
    eval_model = onnx.load(eval_path)
    if drop_running_stat_outputs(eval_model):
        onnx.save(eval_model, eval_path)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: python ort_artifacts.py MODEL.onnx OUT_DIR SPEC.json")
    main(*sys.argv[1:])
