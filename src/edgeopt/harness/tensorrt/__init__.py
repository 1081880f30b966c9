"""TensorRT on the target: build engines (trtexec or the Python API), parse trtexec's output, run engines.

Engines are specific to the GPU, TensorRT version and JetPack they were built with, so the
benchmark stage builds them on the device itself from `model.onnx` (fp32/fp16, int8 by
calibration) or from a QDQ model (int8), with this module. Device-side: Python 3 + numpy, and
`trtexec` or the `tensorrt` Python package; no torch, no edgeopt import outside `edgeopt.harness`.

    python -m edgeopt.harness.tensorrt build --onnx model.onnx --engine trt-fp16.engine \\
        --precision fp16 --input-shape 3x32x32 --max-batch 64 --log build.log --json build.json
    python -m edgeopt.harness.tensorrt parse build.log      # trtexec output -> JSON
    python -m edgeopt.harness.tensorrt time --engine e.engine --batch 8 --use-cuda-graph  # GPU compute time

The output format parsed here is trtexec's own (TensorRT samples/common/sampleReporting.cpp and
trtexec.cpp, TensorRT 8.x and 10.x); tests/data/trtexec-*.log hold logs in that format.

Modules: `options` (BuildOptions, trtexec command lines), `log` (parsing trtexec's output), `build`
(trtexec or the Python API, int8 calibration), `timing` (trtexec's own GPU timing of a built
engine), `cuda` (device memory through cuda-python / pycuda), `runner` (TensorRTRunner). Everything here
imports numpy at most at module level; TensorRT and the CUDA binding only when used.
"""

from __future__ import annotations

from edgeopt.harness.tensorrt.build import (
    TRTEXEC_LOCATIONS,
    build_engine,
    build_engine_python,
    find_trtexec,
    is_qdq,
    load_calibration,
    tensorrt_python_available,
    trtexec_version,
)
from edgeopt.harness.tensorrt.errors import ABSENT, TensorRTBuildError, TensorRTUnavailable
from edgeopt.harness.tensorrt.log import failure_message, parse_trtexec_log
from edgeopt.harness.tensorrt.options import (
    PRECISIONS,
    BuildOptions,
    options_from_config,
    parse_version,
    trtexec_command,
)
from edgeopt.harness.tensorrt.runner import TensorRTRunner

__all__ = [
    "ABSENT",
    "PRECISIONS",
    "TRTEXEC_LOCATIONS",
    "BuildOptions",
    "TensorRTBuildError",
    "TensorRTRunner",
    "TensorRTUnavailable",
    "build_engine",
    "build_engine_python",
    "failure_message",
    "find_trtexec",
    "is_qdq",
    "load_calibration",
    "options_from_config",
    "parse_trtexec_log",
    "parse_version",
    "tensorrt_python_available",
    "trtexec_command",
    "trtexec_version",
]
