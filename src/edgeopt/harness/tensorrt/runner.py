"""Running a serialized engine from Python: float32 NCHW in, logits out (the harness's accuracy pass
and its end-to-end host loop, copies included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.harness.tensorrt.build import collecting_logger
from edgeopt.harness.tensorrt.cuda import CudaBuffers
from edgeopt.harness.tensorrt.errors import ABSENT, TensorRTUnavailable


class TensorRTRunner:
    """A serialized engine run with the TensorRT Python API: float32 NCHW in, logits out.

    Same interface as OrtRunner/TFLiteRunner (`name`, `version`, `predict`). Batches larger than
    the engine's profile maximum are split into chunks. Needs TensorRT 8.5+ (named-tensor API).
    """

    name = "tensorrt"

    def __init__(self, path: str, threads: int = 0, **_: Any) -> None:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise TensorRTUnavailable(ABSENT) from exc
        self.trt = trt
        self.version = trt.__version__
        self.package = "tensorrt"
        self.logger = collecting_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path}: not a TensorRT engine for this GPU/TensorRT version")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self.input, self.output = inputs[0], outputs[0]
        shape = tuple(self.engine.get_tensor_shape(self.input))
        self.max_batch = (
            int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
            if shape[0] == -1
            else int(shape[0])
        )
        self.dynamic = shape[0] == -1
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output)))
        self.buffers = CudaBuffers()

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if not self.dynamic and n != self.max_batch:  # fixed-batch engine: pad the last chunk
            x = np.concatenate([x, np.zeros((self.max_batch - n, *x.shape[1:]), x.dtype)])
        x = np.ascontiguousarray(x, dtype=self.in_dtype)
        if self.dynamic:
            self.context.set_input_shape(self.input, tuple(x.shape))
        out = np.empty(tuple(self.context.get_tensor_shape(self.output)), self.out_dtype)
        self.context.set_tensor_address(self.input, self.buffers.upload("in", x))
        out_ptr = self.buffers.alloc("out", out.nbytes)
        self.context.set_tensor_address(self.output, out_ptr)
        if not self.context.execute_async_v3(self.buffers.stream_handle):
            raise RuntimeError("TensorRT execution failed")
        self.buffers.synchronize()
        return self.buffers.download(out_ptr, out)[:n].astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = [self._run(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return np.concatenate(outs) if outs else np.zeros((0,), np.float32)
