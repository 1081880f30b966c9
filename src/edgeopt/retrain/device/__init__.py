"""Device-side retraining scripts: copied to a device and run with its own python.

Nothing here imports edgeopt, snakemake or anything beyond the training framework and numpy:
`torch_train.py` needs torch + numpy, `ort_train.py` onnxruntime-training + numpy, and
`ort_artifacts.py` (host side, in the ORT training env) onnx + onnxruntime-training.
The devices transport ships this package alone (plus the empty parent `__init__`s) and runs
`python -m edgeopt.retrain.device.<script> --job ... --out result.json` with the device's python.
"""

#: framework -> (module run on the device, the job's model files passed as --<name>)
SCRIPTS = {
    "pytorch": ("edgeopt.retrain.device.torch_train", ("model",)),
    "onnxruntime": (
        "edgeopt.retrain.device.ort_train",
        ("training_model", "eval_model", "optimizer_model", "checkpoint"),
    ),
}

#: job file name for each model-file argument
MODEL_FILES = {
    "model": "model.pt",
    "training_model": "training_model.onnx",
    "eval_model": "eval_model.onnx",
    "optimizer_model": "optimizer_model.onnx",
    "checkpoint": "checkpoint",
}
