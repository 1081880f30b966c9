"""Runtime registry for inference with numpy in/out: ONNX Runtime and TFLite/LiteRT.

Used on devices by the benchmark harness and locally to measure a converted model's
accuracy in the runtime that will run it. Runtime packages are imported lazily, so a device
needs only the runtimes it is asked to run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class RuntimeUnavailable(RuntimeError):
    """The runtime's Python package is not installed on this machine."""


class Runner(Protocol):
    """A loaded model: float32 NCHW batch in, logits out; `input_shape` has None for a dynamic dimension."""

    name: str
    input_shape: list[int | None]

    def predict(self, x: np.ndarray) -> np.ndarray: ...


RUNTIMES: dict[str, Callable[..., Runner]] = {}


def register_runtime(name: str) -> Callable[[Callable[..., Runner]], Callable[..., Runner]]:
    def deco(fn: Callable[..., Runner]) -> Callable[..., Runner]:
        RUNTIMES[name] = fn
        return fn

    return deco


def load_runner(runtime: str, path: str, threads: int = 0, **options: Any) -> Runner:
    """Load `path` in `runtime` ('onnxruntime', 'tflite', ...)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (known: {', '.join(sorted(RUNTIMES))})")
    return RUNTIMES[runtime](path, threads=threads, **options)


@register_runtime("onnxruntime")
class OrtRunner:
    """ONNX Runtime with the execution providers `providers` in order of preference (default: CPU).

    A provider this onnxruntime build lacks is an error; one that is present but rejects the model
    (TensorRT EP on an unsupported op) falls back to the next, so `session.get_providers()` says
    which ones really run.
    """

    name = "onnxruntime"

    def __init__(
        self, path: str, threads: int = 0, providers: list[str] | None = None, opt_level: str = "all",
        spin: bool = True,
    ) -> None:
        """`spin=False` stops the intra-op threads spinning after a run: needed where many sessions live in one
        process and take turns (their spinning threads would steal the cores from the one running)."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise RuntimeUnavailable("onnxruntime is not installed (pip install onnxruntime)") from exc
        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[opt_level]
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        missing = [p for p in providers or [] if p not in available]
        if missing:  # a result labelled with a provider that did not run would mislead
            raise RuntimeUnavailable(
                f"onnxruntime {ort.__version__} here has no {', '.join(missing)} "
                f"(available: {', '.join(available)}; on a Jetson install NVIDIA's onnxruntime-gpu wheel)"
            )
        self.session = ort.InferenceSession(path, so, providers=list(providers or ["CPUExecutionProvider"]))
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = [d if isinstance(d, int) and d > 0 else None for d in first.shape]
        self.version = ort.__version__

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _tflite_interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # frozen at 2.14, numpy<2

        return Interpreter, "tflite-runtime"
    except ImportError as exc:
        raise RuntimeUnavailable(
            "no TFLite interpreter (pip install ai-edge-litert, or tflite-runtime)"
        ) from exc


@register_runtime("tflite")
class TFLiteRunner:
    """LiteRT (ai-edge-litert) interpreter, falling back to the legacy tflite-runtime package.

    Integer-input models get their input quantized and output dequantized here, so callers
    always pass float32 and get float logits. Models with a fixed batch (litert-torch exports
    one) are fed in chunks of that batch, the last one zero-padded, so any number of images works.
    """

    name = "tflite"

    def __init__(self, path: str, threads: int = 0) -> None:
        cls, self.package = _tflite_interpreter_class()
        self.interp = cls(model_path=path, num_threads=threads or None)
        self.input = self.interp.get_input_details()[0]
        self.output = self.interp.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        signature = self.input.get("shape_signature")
        self.fixed_batch = signature is None or len(signature) == 0 or int(signature[0]) != -1
        dims = signature if signature is not None and len(signature) else self.input["shape"]
        self.input_shape = [int(d) if int(d) > 0 else None for d in dims]

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        inp = x
        if self.input["dtype"] in (np.int8, np.uint8):
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input["dtype"])
            inp = np.clip(np.round(x / scale + zero), info.min, info.max)
        if tuple(self.input["shape"]) != inp.shape:
            self.interp.resize_tensor_input(self.input["index"], list(inp.shape))
            self.interp.allocate_tensors()
            self.input = self.interp.get_input_details()[0]
            self.output = self.interp.get_output_details()[0]
        elif not getattr(self, "_allocated", False):
            self.interp.allocate_tensors()
        self._allocated = True
        self.interp.set_tensor(self.input["index"], inp.astype(self.input["dtype"]))
        self.interp.invoke()
        out = self.interp.get_tensor(self.output["index"])
        if self.output["dtype"] in (np.int8, np.uint8):
            scale, zero = self.output["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.fixed_batch or len(x) == self.batch:
            return self._run_batch(x)
        outs = []
        for i in range(0, len(x), self.batch):
            chunk = x[i : i + self.batch]
            n = len(chunk)
            if n < self.batch:
                chunk = np.concatenate([chunk, np.zeros((self.batch - n, *chunk.shape[1:]), np.float32)])
            outs.append(self._run_batch(chunk)[:n].copy())
        return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


@register_runtime("tensorrt")
def _tensorrt_runner(path: str, threads: int = 0, **options: Any) -> Runner:
    """TensorRTRunner (edgeopt.harness.tensorrt), imported only when an engine is run."""
    from edgeopt.harness.tensorrt import TensorRTRunner

    return TensorRTRunner(path, threads=threads, **options)


def preprocess(x_uint8_nhwc: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 NHWC images -> normalised float32 NCHW, exactly as training normalises them."""
    x = x_uint8_nhwc.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def evaluate(
    runner: Runner,
    x_uint8_nhwc: np.ndarray,
    y: np.ndarray,
    mean: list[float],
    std: list[float],
    batch_size: int = 64,
) -> dict[str, Any]:
    """Top-1 accuracy of `runner` on a uint8 split, and its logits (for parity checks)."""
    logits = []
    for i in range(0, len(y), batch_size):
        logits.append(runner.predict(preprocess(x_uint8_nhwc[i : i + batch_size], mean, std)))
    out = np.concatenate(logits) if logits else np.zeros((0, 0), np.float32)
    acc = float((out.argmax(1) == y).mean()) if len(y) else 0.0
    return {"accuracy": acc, "images": int(len(y)), "logits": out}
