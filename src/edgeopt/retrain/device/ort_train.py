"""Device side: fine-tune with ONNX Runtime on-device training (onnxruntime-training + numpy only).

Usage: python -m edgeopt.retrain.device.ort_train --job job.json --train train.npz --test test.npz
--training-model F --eval-model F --optimizer-model F --checkpoint F --out result.json, the four
artifacts being those `generate_artifacts` wrote. ORT training runs fp32 here (the CPU package has no
mixed-precision training kernels), on the CPU provider unless CUDA is available to it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

try:
    from . import common, ort_api
except ImportError:  # run as a plain script on the device
    import common  # type: ignore[no-redef]
    import ort_api  # type: ignore[no-redef]


def evaluate(module: Any, x: np.ndarray, y: np.ndarray, bs: int) -> dict[str, float]:
    """Top-1 accuracy and mean loss with the eval graph (batch-norm in inference mode)."""
    module.eval()
    correct, loss_sum = 0, 0.0
    for i in range(0, len(y), bs):
        xb, yb = x[i : i + bs], y[i : i + bs]
        out = module(xb, yb)
        # eval model outputs: loss, then the model's logits when requested
        loss, logits = (out[0], out[1]) if isinstance(out, (list, tuple)) else (out, None)
        loss_sum += float(loss) * len(yb)
        if logits is not None:
            correct += int((np.asarray(logits).argmax(1) == yb).sum())
    n = max(len(y), 1)
    return {"accuracy": correct / n, "loss": loss_sum / n}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    t_start = time.perf_counter()
    args = common.parse_args(argv, ("training_model", "eval_model", "optimizer_model", "checkpoint"), __doc__)
    import onnxruntime as ort

    api = ort_api.api()
    job = common.load_job(args.job)
    if job["precision"] != "fp32":
        raise SystemExit(f"onnxruntime training runs fp32 only here, got precision {job['precision']!r}")
    providers = ort.get_available_providers()
    want = job.get("device", "auto")
    device = "cuda" if want in ("auto", "cuda") and "CUDAExecutionProvider" in providers else "cpu"
    if want.startswith("cuda") and device != "cuda":
        raise SystemExit("device 'cuda' requested but onnxruntime has no CUDA provider here")
    opts = ort.SessionOptions()
    if job.get("threads"):
        opts.intra_op_num_threads = int(job["threads"])
    np.random.seed(job["seed"])
    state = api.CheckpointState.load_checkpoint(args.checkpoint)
    module = api.Module(args.training_model, state, args.eval_model, device=device, session_options=opts)
    optimizer = api.Optimizer(args.optimizer_model, module)
    optimizer.set_learning_rate(job["lr"])
    xtr, ytr = common.load_split(args.train, job["mean"], job["std"])
    xte, yte = common.load_split(args.test, job["mean"], job["std"])
    before = evaluate(module, xte, yte, job["eval_batch_size"])
    names = [n for n, _ in state.parameters] if job.get("verify_freeze") else []
    snapshot = {n: np.array(state.parameters[n].data, copy=True) for n in names}
    rss_before = common.current_rss_bytes()
    timer = common.EpochTimer()
    for epoch in range(job["epochs"]):
        module.train()
        timer.start()
        loss_sum = 0.0
        batches = common.batch_order(len(ytr), job["batch_size"], epoch, job["seed"])
        for idx in batches:
            out = module(xtr[idx], ytr[idx])
            loss_sum += float(out[0] if isinstance(out, (list, tuple)) else out)
            optimizer.step()
            module.lazy_reset_grad()
        timer.stop(len(batches) * len(batches[0]), loss_sum / len(batches))
    after = evaluate(module, xte, yte, job["eval_batch_size"])
    n_train = int(module.get_parameters_size(True))
    changes = None
    if job.get("verify_freeze"):
        after_p = {n: np.asarray(state.parameters[n].data) for n in names}
        changes = common.param_change(snapshot, after_p, set(job["frozen_params"]))
    n_all = int(module.get_parameters_size(False))
    result = {
        "framework": "onnxruntime",
        "runtime_version": ort.__version__,
        "torch_device": device,
        "gpu": None,
        "precision": "fp32",
        "amp": False,
        "batch_size": job["batch_size"],
        "train_images": int(len(ytr)),
        "test_images": int(len(yte)),
        "trainable_params": n_train,
        "frozen_params": n_all - n_train,
        "accuracy_before": before["accuracy"],
        "loss_before": before["loss"],
        "accuracy_after": after["accuracy"],
        "loss_after": after["loss"],
        **timer.summary(),
        "peak_rss_bytes": common.peak_rss_bytes(),
        "rss_before_training_bytes": rss_before,
        "gpu_max_allocated_bytes": None,
        "param_change": changes,
        "wall_seconds": time.perf_counter() - t_start,
        "host": common.host_info(),
    }
    common.write_result(args.out, result)
    return result


if __name__ == "__main__":
    r = main()
    print(
        f"onnxruntime: {r['images_per_second']:.0f} img/s, accuracy {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f}"
    )
