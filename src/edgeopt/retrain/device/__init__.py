"""Device-side retraining scripts: copied to a device and run with its own python.

Nothing here imports edgeopt, snakemake or anything beyond the training framework and numpy:
`torch_train.py` needs torch + numpy, `ort_train.py` onnxruntime-training + numpy, and
`ort_artifacts.py` (host side, in the ORT training env) onnx + onnxruntime-training.
Each script takes a job folder (job.json + data + model) and writes `result.json` into it.
"""

#: files shipped to a device for each framework (all in this folder)
FILES = {
    "pytorch": ("common.py", "torch_train.py"),
    "onnxruntime": ("common.py", "ort_api.py", "ort_train.py"),
}
