"""Device memory for TensorRT through cuda-python or pycuda (TensorRT's Python package brings neither)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.harness.tensorrt.errors import TensorRTUnavailable


class CudaBuffers:
    """Device memory through cuda-python (`cuda.bindings.runtime` / `cuda.cudart`) or pycuda,
    whichever the device has: TensorRT's Python package brings neither."""

    def __init__(self) -> None:
        self.ptrs: dict[str, tuple[int, int]] = {}
        self.cudart: Any = None
        self.pycuda: Any = None
        try:
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart  # type: ignore[no-redef]
            self.cudart = cudart
        except ImportError:
            try:
                import pycuda.autoinit  # noqa: F401
                import pycuda.driver as driver
            except ImportError as exc:
                raise TensorRTUnavailable(
                    "running TensorRT engines from Python needs cuda-python or pycuda (pip install cuda-python)"
                ) from exc
            self.pycuda = driver
        self.stream = self._call("cudaStreamCreate") if self.cudart else self.pycuda.Stream()

    def _call(self, name: str, *args: Any) -> Any:
        res = getattr(self.cudart, name)(*args)
        err, rest = res[0], res[1:]
        if int(err) != 0:
            raise RuntimeError(f"CUDA {name} failed: {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    @property
    def stream_handle(self) -> int:
        return int(self.stream) if self.cudart else int(self.stream.handle)

    def alloc(self, key: str, nbytes: int) -> int:
        have = self.ptrs.get(key)
        if have and have[1] >= nbytes:
            return have[0]
        if have:
            self._free(have[0])
        ptr = int(self._call("cudaMalloc", nbytes)) if self.cudart else self.pycuda.mem_alloc(nbytes)
        self.ptrs[key] = (int(ptr), nbytes)
        if self.pycuda:
            self._keep = getattr(self, "_keep", {})
            self._keep[key] = ptr  # pycuda frees on garbage collection
        return int(ptr)

    def upload(self, key: str, arr: np.ndarray) -> int:
        ptr = self.alloc(key, arr.nbytes)
        if self.cudart:
            kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._call("cudaMemcpy", ptr, arr.ctypes.data, arr.nbytes, kind)
        else:
            self.pycuda.memcpy_htod(ptr, arr)
        return ptr

    def download(self, ptr: int, out: np.ndarray) -> np.ndarray:
        if self.cudart:
            kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._call("cudaMemcpy", out.ctypes.data, ptr, out.nbytes, kind)
        else:
            self.pycuda.memcpy_dtoh(out, ptr)
        return out

    def synchronize(self) -> None:
        if self.cudart:
            self._call("cudaStreamSynchronize", self.stream)
        else:
            self.stream.synchronize()

    def _free(self, ptr: int) -> None:
        if self.cudart:
            self.cudart.cudaFree(ptr)

    def __del__(self) -> None:
        if getattr(self, "cudart", None):
            for ptr, _ in self.ptrs.values():
                self._free(ptr)
